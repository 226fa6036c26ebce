"""A ``Replace`` run waiting for the run it replaces (whose command ignores SIGTERM, so up to the
kill grace) when crontask is asked to stop does not start: it is recorded as a waiting retry is
then, ``interrupted``, reason Shutdown. It started a new process once the old one died, during
the shutdown, which then waited its whole grace and kill grace for it (48 s with a kill grace of
18 s), though from the moment crontask is asked to stop it decides no new run.

Real commands; the old run ends when the test says so (a gate file stands for its kill grace's
SIGKILL), after the stop was asked, so no wait is timed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.store import MemoryRunStore
from tests.controller.test_policies import until
from tests.controller.test_replaced_before_start import KEY, SLOT, dispatcher, ran, stubborn


def test_a_replacing_run_waiting_when_crontask_stops_does_not_start(tmp_path: Path) -> None:
    first, second = SLOT, SLOT + timedelta(minutes=1)
    job = stubborn(tmp_path, first)
    store = MemoryRunStore()

    async def scenario() -> list[RunRecord]:
        d, heard = dispatcher(store, SLOT)
        d.fire(job, first)
        await until((tmp_path / "up").exists)
        d.fire(job, second)  # stops the first, which ignores it: the second waits
        d.close()  # crontask is asked to stop (SIGTERM) while it waits
        (tmp_path / "gate").touch()  # the first run ends (its SIGKILL, after the grace)
        await d.shutdown(30)
        return heard

    heard = asyncio.run(scenario())
    assert not ran(tmp_path, second)  # no process started during the shutdown
    record = store.get(run_id(KEY, second))
    assert record is not None
    assert (record.status, record.reason, record.started_at) == (
        RunStatus.INTERRUPTED,
        "Shutdown",
        None,
    )
    assert record.message == "crontask stopped while this run waited; it did not start"
    assert [r.status for r in heard if r.id == record.id] == [RunStatus.INTERRUPTED]
    old = store.get(run_id(KEY, first))
    assert old is not None
    assert (old.status, old.reason) == (RunStatus.FAILED, "Replaced")
