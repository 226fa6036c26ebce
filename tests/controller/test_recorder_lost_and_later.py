"""The records a recorder cannot write: those lost at a shutdown during an outage are each
named in the log, and the ends a start could not write (``Recorder.later``) wait with the
others until the store is back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest

from reconciler.controller.recorder import LOST_LISTED, Recorder
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store.base import StoreUnavailable
from reconciler.store.memory import MemoryRunStore
from tests.controller.test_recorder import T0, OutageStore, record


class FullStore(OutageStore):
    """Writes fail while ``down``, whatever the call (a full disk); reads go on."""

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        if self.down:
            raise StoreUnavailable("database or disk is full")
        return super().claim_many(records)

    def save_many(self, records: Sequence[RunRecord]) -> list[RunRecord]:
        if self.down:
            raise StoreUnavailable("database or disk is full")
        return super().save_many(records)


def fields(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, object]]:
    return [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == message]


def test_records_lost_at_shutdown_are_named(caplog: pytest.LogCaptureFixture) -> None:
    store = FullStore()
    count = LOST_LISTED + 3

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01, retry_max=0.05)
        store.down = True
        for minute in range(count):
            assert await recorder.save(record(minute, RunStatus.SUCCEEDED)) is False
        await recorder.close(0.1)

    asyncio.run(main())
    assert fields(caplog, "run records lost at shutdown: the store stayed unavailable") == [
        {"lost": count}
    ]
    # The oldest first, whatever order they waited in (a flush moves what failed to the back).
    named = fields(caplog, "run record lost at shutdown")
    assert [f["run"] for f in named] == [record(minute).id for minute in range(LOST_LISTED)]
    assert {(f["attempt"], f["status"]) for f in named} == {(1, RunStatus.SUCCEEDED)}
    assert fields(caplog, "more run records lost at shutdown, not listed") == [{"more": 3}]


def test_ends_kept_at_start_are_written_when_the_store_is_back() -> None:
    store = FullStore()
    running = record(0)
    store.claim(running)
    end = running.finish(RunStatus.INTERRUPTED, finished_at=T0 + timedelta(minutes=1))
    unrecorded = record(1, RunStatus.INTERRUPTED)
    # Recorded meanwhile by another crontask: it stands.
    theirs = record(2, RunStatus.SUCCEEDED)
    ours = record(2, RunStatus.INTERRUPTED)

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01, retry_max=0.05)
        store.down = True
        recorder.later([end], [unrecorded, ours])
        assert recorder.pending == 3
        assert await recorder.flush(0.1) is False
        MemoryRunStore.claim(store, theirs)  # another crontask's write: the outage is ours
        store.down = False
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    assert store.get(running.id) == end
    assert store.get(unrecorded.id) == unrecorded
    assert store.get(theirs.id) == theirs
