"""Fault: the SQLite file's disk is full, the file read-only, or a file-size limit reached.

The contract the recorder relies on (``reconciler.controller.recorder``): while the disk
refuses writes, every write of the SQL store raises ``StoreUnavailable`` (never another error,
which the recorder would log and drop), writes nothing half-way, and reads go on; once the
disk accepts writes again, the same store object writes, through every connection of its
pool, those opened during the fault included. The faults are real (``tests.faults.disk``).

One write may still fail after a read-only file became writable again: SQLite opens a
connection read-only when the file cannot be written, and such a connection, opened for a read
during the fault and pooled, refuses the first write after it. That failure drops it, and every
other pooled connection, from the pool (``sql_schema._sqlite_on_error``); the next write opens
a fresh connection, which writes. Without that, the store would never write again.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.store import RunQuery, StoreUnavailable, open_store, sqlite_url
from reconciler.store.sql import SqlRunStore
from tests.faults.disk import KINDS, DiskFault
from tests.store._records import rec

# Big enough that a record needs new blocks of the write-ahead log.
OUTPUT = "o" * 16 * 1024


@pytest.fixture(params=KINDS)
def fault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DiskFault]:
    made = DiskFault(request.param, tmp_path / "state")
    yield made
    made.close()


@pytest.fixture
def store(fault: DiskFault) -> Iterator[SqlRunStore]:
    opened = open_store(sqlite_url(fault.state_dir))
    assert isinstance(opened, SqlRunStore)
    yield opened
    opened.close()


def writes(store: SqlRunStore, at: int) -> list[Callable[[], object]]:
    """Every kind of write the store offers: three new records (slots ``at`` to ``at + 2``),
    and the final state of the running record of slot 3."""
    running = rec(at=3, status=RunStatus.RUNNING, output=OUTPUT)
    return [
        lambda: store.claim(rec(at=at, output=OUTPUT)),
        lambda: store.claim_many([rec(at=at + 1, output=OUTPUT)]),
        lambda: store.save_many([rec(at=at + 2, output=OUTPUT)]),
        lambda: store.complete(dataclasses.replace(running, output=OUTPUT * 2)),
    ]


def settle(fault: DiskFault, store: SqlRunStore) -> None:
    """The first write after the fault: at most one failure, and only after a read-only file
    (see the module docstring)."""
    if fault.kind == "read-only":
        with contextlib.suppress(StoreUnavailable):
            store.save_many([rec(at=200)])
    store.save_many([rec(at=200)])


def read(fault: DiskFault, store: SqlRunStore) -> list[int] | None:
    """What a reader sees during the fault. A full disk or a read-only file still lets the API
    and the status page read. Under a file-size limit even a read may fail (opening the log
    writes its index): then it too is StoreUnavailable, and None is returned."""
    try:
        return slots(store)
    except StoreUnavailable:
        assert fault.kind == "file-size-limit"
        return None


def slots(store: SqlRunStore) -> list[int]:
    items = store.query(RunQuery(limit=1000)).items
    return sorted(
        int((r.scheduled_at - rec(at=0).scheduled_at).total_seconds() // 60) for r in items
    )


def test_writes_fail_as_unavailable_and_resume_when_the_disk_clears(
    fault: DiskFault, store: SqlRunStore
) -> None:
    store.claim(rec(at=3, status=RunStatus.RUNNING))  # what complete() updates
    store.save_many([rec(at=100)])
    fault.start()
    for write in writes(store, 10):
        with pytest.raises(StoreUnavailable):
            write()
    # The pool opens connections whenever it needs them (another thread, a recycle, after an
    # invalidation): one opened now, during the fault, must not stay unable to write after it.
    store.engine.dispose()
    for write in writes(store, 20):
        with pytest.raises(StoreUnavailable):
            write()
    assert read(fault, store) in (None, [3, 100])  # nothing written half-way
    fault.end()

    settle(fault, store)
    for write in writes(store, 30):
        write()
    store.save_many([rec(at=40 + n) for n in range(5)])
    assert slots(store) == [3, 30, 31, 32, 40, 41, 42, 43, 44, 100, 200]
    completed = store.get(rec(at=3).id)
    assert completed is not None
    assert completed.output == OUTPUT * 2


def test_a_store_opened_before_a_fault_survives_several(
    fault: DiskFault, store: SqlRunStore
) -> None:
    for round_ in range(3):
        fault.start()
        with pytest.raises(StoreUnavailable):
            store.save_many([rec(at=round_, output=OUTPUT)])
        store.engine.dispose()
        with pytest.raises(StoreUnavailable):
            store.claim(rec(at=10 + round_, output=OUTPUT))
        before = read(fault, store)
        fault.end()
        assert before in (None, slots(store))
        settle(fault, store)
        store.save_many([rec(at=round_, output=OUTPUT)])
        store.claim(rec(at=10 + round_, output=OUTPUT))
    assert slots(store) == [0, 1, 2, 10, 11, 12, 200]
