"""A full disk under the SQLite run store names the file, and the room left on its file system.

SQLite's words name no file: a running crontask logged ``error="run store unavailable:
database or disk is full"``, and ``crontask runs`` (or ``crontask run`` at start) printed
``crontask: run store unavailable: disk I/O error``, on a host with several stores and disks.
The disk is a real tmpfs filled to its last byte (``tests.faults.disk``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.store import StoreUnavailable, open_store, sqlite_url
from tests.faults.disk import SmallDisk, require
from tests.helpers import crontask_cli
from tests.store._records import rec

# Big enough that a record needs new blocks of the write-ahead log.
OUTPUT = "o" * 64 * 1024


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    require("full")
    made = SmallDisk(tmp_path / "disk", size=2 * 1024 * 1024)
    try:
        yield made
    finally:
        made.clear()
        made.unmount()


def test_a_write_on_a_full_disk_names_the_file_and_its_room(disk: SmallDisk) -> None:
    state = disk.path / "state"
    store = open_store(sqlite_url(state), writer=True)
    try:
        disk.fill()
        with pytest.raises(StoreUnavailable) as raised:
            store.claim_many([rec(at=1, status=RunStatus.RUNNING, output=OUTPUT)])
    finally:
        store.close()
    said = str(raised.value)
    assert said.startswith("run store unavailable: database or disk is full ("), said
    assert f"({state / 'runs.db'}, 0 bytes free on its file system)" in said, said


def test_crontask_runs_on_a_full_disk_names_the_file(disk: SmallDisk) -> None:
    state = disk.path / "state"
    open_store(sqlite_url(state), writer=True).close()  # its -wal and -shm gone with it
    disk.fill()
    done = crontask_cli("runs", "--state-dir", str(state))
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip()
    assert re.fullmatch(
        rf"crontask: run store unavailable: [^(]+ \({re.escape(str(state / 'runs.db'))},"
        r" 0 bytes free on its file system\)",
        line,
    ), line
