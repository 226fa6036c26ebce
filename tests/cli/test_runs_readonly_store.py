"""``crontask runs`` of a stopped store in a folder it may not write (another user's store):
SQLite reads a WAL store through a ``runs.db-shm`` file it makes beside the file, even with
``mode=ro``, and failed with "attempt to write a readonly database". It says what SQLite needs
instead (an immutable read needs no -shm, but a crontask starting meanwhile rewrites the file
under it: "database disk image is malformed").

The folder is made unwritable with ``chmod 555``, or as root (whom modes do not stop) with
``chattr +i`` (``tests.faults.disk``: skipped where it is refused). The real
``crontask`` runs as a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store import open_store, sqlite_url
from tests.faults import disk
from tests.helpers import crontask_cli
from tests.store._records import rec


def _files(state: Path) -> list[str]:
    return sorted(p.name for p in state.iterdir() if p.name.startswith("runs.db"))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory whose store holds a run of ``ns/kept``, closed as crontask leaves it
    when it stops: no -wal, no -shm."""
    state = tmp_path / "state"
    store = open_store(sqlite_url(state))
    try:
        store.save_many([rec("ns/kept")])
    finally:
        store.close()
    assert _files(state) == ["runs.db"]
    return state


@contextlib.contextmanager
def _unwritable(folder: Path) -> Iterator[None]:
    """``folder`` no one may create a file in, root included, for the block."""
    if os.geteuid() == 0:
        disk.require("read-only")
        with disk.immutable([folder]):
            assert not os.access(folder, os.W_OK)
            yield
        return
    mode = folder.stat().st_mode
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(mode)


@pytest.mark.parametrize("changes_in_the_wal", [False, True])
def test_runs_says_what_sqlite_needs_of_a_stopped_store_in_an_unwritable_folder(
    state: Path, changes_in_the_wal: bool
) -> None:
    db = state / "runs.db"
    if changes_in_the_wal:
        # A -wal that holds a commit, left without its -shm (a crontask killed, then the -shm
        # removed): copied aside before the connection's close folds it into the file.
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("UPDATE runs SET message = 'changed'")
            shutil.copy(state / "runs.db-wal", state / "kept-wal")
        finally:
            conn.close()
        (state / "kept-wal").rename(state / "runs.db-wal")
    before = db.read_bytes()
    with _unwritable(state):
        done = crontask_cli("runs", "--state-dir", str(state), "--json")
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"crontask: cannot read {db}: SQLite needs write access to its folder for runs.db-shm"
        " while crontask is stopped: read it as crontask's user, or while crontask runs\n"
    )
    assert db.read_bytes() == before  # nothing written into it


def test_runs_reads_a_writable_folder_as_before(state: Path) -> None:
    # The folder may be written: SQLite makes its -shm and reads with its locks, not immutable.
    done = crontask_cli("runs", "--state-dir", str(state), "--json")
    assert done.returncode == 0, done.stderr
    assert [item["task"] for item in json.loads(done.stdout)["items"]] == ["ns/kept"]
