"""``crontask runs`` of a stopped store on a read-only file system (a backup or a snapshot
mounted read-only): SQLite cannot make the ``runs.db-shm`` it reads a WAL store through, and
the answer said to read it "as crontask's user, or while crontask runs", neither of which a
read-only file system allows. It names the read-only file system and the immutable read that
needs no -shm, and that read works.

The read-only file system is a real read-only bind mount of the state directory (needs root:
skipped elsewhere, as ``tests.faults.disk`` skips a tmpfs); the real ``crontask`` runs as a
subprocess.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from reconciler.store import open_store, sqlite_url
from tests.faults import disk
from tests.helpers import crontask_cli
from tests.store._records import rec


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` bind-mounted read-only on itself for the block."""
    disk.require("full")  # mounting a file system needs CAP_SYS_ADMIN, as a tmpfs does
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_runs_on_a_read_only_file_system_names_it_and_the_read_that_works(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    store = open_store(sqlite_url(state))
    try:
        store.save_many([rec("ns/kept")])
    finally:
        store.close()
    db = state / "runs.db"
    with _read_only(state):
        refused = crontask_cli("runs", "--state-dir", str(state), "--json")
        immutable = f"sqlite:///file:{db}?uri=true&immutable=1"
        read = crontask_cli("runs", "--db", immutable, "--json")
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr == (
        f"crontask: cannot read {db}: its file system is read-only, and SQLite needs to make "
        f"runs.db-shm beside it while crontask is stopped: read it with --db '{immutable}'\n"
    )
    assert read.returncode == 0, read.stderr
    assert [item["task"] for item in json.loads(read.stdout)["items"]] == ["ns/kept"]


def test_a_copy_whose_latest_runs_are_in_its_wal_is_not_sent_to_an_immutable_read(
    tmp_path: Path,
) -> None:
    """A copy of runs.db and runs.db-wal without the -shm (a backup that leaves -shm files
    out): an immutable read ignores the -wal, so the advice read the runs it holds as never
    made, without a word. The answer says to copy both files where SQLite may make the -shm,
    and a read of that copy finds every run."""
    live, state = tmp_path / "live", tmp_path / "state"
    store = open_store(sqlite_url(live), writer=True)
    try:
        store.save_many([rec("ns/old")])
    finally:
        store.close()  # its last close checkpoints: ns/old is in runs.db
    store = open_store(sqlite_url(live), writer=True)
    try:
        store.save_many([rec("ns/new")])  # in runs.db-wal only, while the store is open
        state.mkdir(mode=0o700)
        for name in ("runs.db", "runs.db-wal"):
            shutil.copy2(live / name, state / name)
    finally:
        store.close()
    db = state / "runs.db"
    with _read_only(state):
        refused = crontask_cli("runs", "--state-dir", str(state), "--json")
    assert refused.returncode == 1, refused.stderr
    assert "immutable" not in refused.stderr
    assert refused.stderr == (
        f"crontask: cannot read {db}: its file system is read-only, and SQLite needs to make "
        "runs.db-shm beside it to read runs.db-wal, which holds its latest writes: copy "
        "runs.db and runs.db-wal to a folder you may write, and read the copy\n"
    )
    copy = tmp_path / "copy"
    copy.mkdir(mode=0o700)
    for name in ("runs.db", "runs.db-wal"):
        shutil.copy2(state / name, copy / name)
    read = crontask_cli("runs", "--db", sqlite_url(copy), "--json")
    assert read.returncode == 0, read.stderr
    assert sorted(item["task"] for item in json.loads(read.stdout)["items"]) == ["ns/new", "ns/old"]
