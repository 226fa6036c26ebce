"""Fault: the SQLite run store's disk refuses writes (full, read-only file, file-size limit)
while the dispatcher runs tasks: the runs happen, their records wait in the recorder, the log
says so, and once the disk takes writes again every record arrives, final, none dropped.

The faults are real (``tests.faults.disk``); the store is the real SQLite store, the commands
real processes. ``tests/e2e/test_fault_disk.py`` does the same through ``crontask run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunStatus
from reconciler.store import RunQuery, StoreUnavailable, open_store, sqlite_url
from reconciler.store.sql import SqlRunStore
from tests.faults.disk import KINDS, DiskFault
from tests.helpers import definition, local_actions

T0 = datetime(2026, 11, 26, 12, tzinfo=UTC)
SLOTS = 3


@pytest.fixture(params=KINDS)
def fault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DiskFault]:
    made = DiskFault(request.param, tmp_path / "state")
    yield made
    made.close()


def test_records_wait_for_the_disk_and_all_arrive(
    fault: DiskFault, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.recorder")
    store = open_store(sqlite_url(fault.state_dir))
    assert isinstance(store, SqlRunStore)
    jobs = [definition(name, command={"args": ["true"]}) for name in ("a", "b")]

    async def main() -> int:
        recorder = Recorder(store, retry_initial=0.01, retry_max=0.05)
        dispatcher = Dispatcher(
            store, owner="h:1:x", clock=lambda: T0, recorder=recorder, actions=local_actions()
        )
        fault.start()
        for minute in range(SLOTS):
            for job in jobs:
                dispatcher.fire(job, T0 + timedelta(minutes=minute))
            assert await dispatcher.drain(10)  # every run ran, whatever the disk says
        # A reader during the fault: the pool opens a connection now (read-only, if the file
        # is), which must not keep the store from writing afterwards.
        await recorder.call(store.engine.dispose)
        with contextlib.suppress(StoreUnavailable):
            await recorder.call(store.query, RunQuery())
        assert not await recorder.flush(0.2)
        pending = recorder.pending
        fault.end()
        assert await recorder.flush(10)
        await dispatcher.shutdown(0)
        return pending

    try:
        pending = asyncio.run(main())
        records = store.query(RunQuery(limit=100)).items
    finally:
        store.close()
    assert pending == SLOTS * len(jobs)  # one entry per run: its running and final states merged
    assert sorted((r.task, r.scheduled_at) for r in records) == sorted(
        (job.key, T0 + timedelta(minutes=m)) for job in jobs for m in range(SLOTS)
    )
    assert {r.status for r in records} == {RunStatus.SUCCEEDED}
    messages = [r.getMessage() for r in caplog.records]
    assert "run store unavailable; running anyway, records kept for later" in messages
    # Warned of once, not at each batch kept: the later ones are counted in the "back" line.
    assert len([m for m in messages if "kept for later" in m]) == 1
    [back] = [
        r for r in caplog.records if r.getMessage() == "run store back; pending records written"
    ]
    assert back.__dict__["fields"]["kept_since_warning"] >= SLOTS * len(jobs) - len(jobs)
    assert not [m for m in messages if "dropped" in m or "lost" in m]
