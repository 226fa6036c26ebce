"""A claim the store refuses, once nobody awaits it (its run was cancelled), is not reported
as an exception never retrieved; nor is one the store could not take one by one.

asyncio reports it when the future is collected: each test checks that it was (a weak
reference), and keeps pytest's log capture from holding the recorder's "claiming them one by
one" record, whose traceback holds the batch and its futures: the test could not fail."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)


class BrokenBatchStore(MemoryRunStore):
    """Refuses a batch of claims with an error that is no outage, and then each claim alone
    (``Claiming._claim_one``)."""

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        raise ValueError("refused")


def _record() -> RunRecord:
    return RunRecord(
        run_id("default/job", T0), "default/job", T0, Trigger.SCHEDULE, RunStatus.RUNNING
    )


@pytest.fixture(autouse=True)
def _records_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder logs nothing: pytest's log capture would keep the record (it attaches its
    handler to a logger that does not propagate, too)."""
    monkeypatch.setattr(logging.getLogger("crontask.recorder"), "disabled", True)


async def _claims_nobody_awaits(store: MemoryRunStore) -> list[str]:
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    # Its words only: a context kept would keep the future it reports alive (resurrected).
    loop.set_exception_handler(lambda _, context: reported.append(f"{context['message']}"))
    recorder = Recorder(store)
    claimed = recorder.claim_soon(_record())
    while not claimed.done():  # answered in the store's thread
        await asyncio.sleep(0.001)
    gone = weakref.ref(claimed)
    del claimed  # its run is gone: nobody reads what it says
    for _ in range(100):  # the callbacks of the answer run, and the tasks that held it end
        await asyncio.sleep(0)
        gc.collect()
        if gone() is None:
            break
    assert gone() is None  # collected: asyncio has reported it, if it would
    await recorder.close(1.0)
    return reported


def test_a_claim_refused_as_taken_elsewhere_that_nobody_awaits_is_not_reported() -> None:
    store = MemoryRunStore()
    store.claim(_record())  # taken already: the claim below is a DuplicateRun
    assert asyncio.run(_claims_nobody_awaits(store)) == []


def test_a_claim_the_store_refused_that_nobody_awaits_is_not_reported() -> None:
    assert asyncio.run(_claims_nobody_awaits(BrokenBatchStore())) == []
