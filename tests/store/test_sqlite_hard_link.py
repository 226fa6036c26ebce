"""A run store file with a second name (a hard link, ``cp -al``): SQLite keeps a database's
``-wal`` and ``-shm`` beside the name it was opened by, so two crontasks writing it by two
names each wrote a journal of their own, and whichever checkpointed last wrote over the
other's pages: reproduced with two real crontasks, one's 111 runs gone from the file once the
other's journal was replayed over them, without a word (``PRAGMA integrity_check`` said ok).
A writer refuses such a file before it changes anything, as it refuses a symbolic link; a
reader (``crontask runs``) reads it as before. The real ``crontask`` runs as a subprocess.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler import statedir
from reconciler.store import open_store, sqlite_url
from tests.helpers import crontask_cli
from tests.store._records import rec


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """A store at ``a/runs.db`` holding a run, and its second name ``b/runs.db``."""
    first = tmp_path / "a"
    store = open_store(sqlite_url(first), writer=True)
    try:
        store.save_many([rec("ns/kept")])
    finally:
        store.close()
    second = tmp_path / "b"
    second.mkdir(mode=0o700)
    os.link(first / "runs.db", second / "runs.db")
    return first / "runs.db", second / "runs.db"


def test_a_writer_refuses_either_name_of_a_hard_linked_store(linked: tuple[Path, Path]) -> None:
    for db in linked:
        before = db.read_bytes()
        with pytest.raises(statedir.Refused) as caught:
            open_store(sqlite_url(db.parent), writer=True)
        assert str(caught.value) == (
            f"refusing run store {db.absolute()}: it has 2 names (hard links), and SQLite keeps"
            " its -wal and -shm beside the name it is opened by: two crontasks writing it by"
            " two names corrupt it; remove the other names (find / -xdev -samefile"
            f" {db.absolute()} lists them; a copy made with cp -al or ln is one: copy with cp"
            " instead), and give every crontask that shares it the same --db"
        )
        assert db.read_bytes() == before
        assert sorted(p.name for p in db.parent.iterdir()) == ["runs.db"]


def test_crontask_run_refuses_it_in_one_line_and_runs_reads_it(
    linked: tuple[Path, Path], tmp_path: Path
) -> None:
    first, second = linked
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    state = str(tmp_path / "state")
    done = crontask_cli("run", "--state-dir", state, "--db", sqlite_url(second.parent), str(tasks))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"crontask: refusing run store {second.absolute()}: it has 2")
    assert done.stderr.count("\n") == 1
    read = crontask_cli("runs", "--db", sqlite_url(first.parent), "--json")
    assert read.returncode == 0, read.stderr
    assert '"ns/kept"' in read.stdout
