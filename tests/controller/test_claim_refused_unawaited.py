"""A claim the store refuses, once nobody awaits it (its run was cancelled), is not reported
as an exception never retrieved; nor is one the store could not take one by one."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)


class BrokenBatchStore(MemoryRunStore):
    """Refuses a batch of claims with an error that is no outage, and then each claim alone
    (``Recorder._claim_one``)."""

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        raise ValueError("refused")


def _record() -> RunRecord:
    return RunRecord(
        run_id("default/job", T0), "default/job", T0, Trigger.SCHEDULE, RunStatus.RUNNING
    )


async def _claims_nobody_awaits(store: MemoryRunStore) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    recorder = Recorder(store)
    claimed = recorder.claim_soon(_record())
    while not claimed.done():  # answered in the store's thread
        await asyncio.sleep(0.001)
    del claimed  # its run is gone: nobody reads what it says
    for _ in range(3):
        await asyncio.sleep(0)  # the callbacks of the answer run
    gc.collect()
    await recorder.close(1.0)
    return reported


def test_a_claim_refused_as_taken_elsewhere_that_nobody_awaits_is_not_reported() -> None:
    store = MemoryRunStore()
    store.claim(_record())  # taken already: the claim below is a DuplicateRun
    assert asyncio.run(_claims_nobody_awaits(store)) == []


def test_a_claim_the_store_refused_that_nobody_awaits_is_not_reported() -> None:
    assert asyncio.run(_claims_nobody_awaits(BrokenBatchStore())) == []
