"""Every claim of a batch is answered, whatever became of the others: one whose waiter
cancelled it (its run was cancelled while it waited) is left as it is, where setting it raised
InvalidStateError and the rest of its batch was never answered; and a claim whose write was
only queued for the store's threads when ``close`` shut them hears that the store is closed,
where it was never answered (the write's cancellation ended the task that would have)."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore
from reconciler.store.base import DuplicateRun

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)
WAIT = 10.0  # seconds: reached only by a test that fails


def _record(minute: int = 0) -> RunRecord:
    at = T0.replace(minute=minute)
    return RunRecord(
        run_id("default/job", at), "default/job", at, Trigger.SCHEDULE, RunStatus.RUNNING
    )


class HeldStore(MemoryRunStore):
    """Answers each batch of claims with ``taken`` for every claim, once ``go`` is set."""

    def __init__(self, taken: bool) -> None:
        super().__init__()
        self.taken = taken
        self.entered = threading.Event()
        self.go = threading.Event()

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        self.entered.set()
        self.go.wait(WAIT)
        return [self.taken for _ in records]


def _watch() -> list[str]:
    reported: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(f"{context['message']}"))
    return reported


async def _unreported(reported: list[str]) -> list[str]:
    """``reported``, once what nobody holds any more is collected (and reported if it would)."""
    for _ in range(3):
        await asyncio.sleep(0)
        gc.collect()
    return reported


@pytest.mark.parametrize("taken", [True, False])
def test_a_claim_its_waiter_cancelled_leaves_the_rest_of_its_batch_answered(taken: bool) -> None:
    async def main() -> None:
        reported = _watch()
        store = HeldStore(taken)
        recorder = Recorder(store, answer_wait=WAIT)
        first = recorder.claim_soon(_record(0))
        await asyncio.to_thread(store.entered.wait, WAIT)  # the store holds the first batch
        cancelled, other = recorder.claim_soon(_record(1)), recorder.claim_soon(_record(2))
        cancelled.cancel()  # as its waiter's cancellation does
        store.go.set()
        await asyncio.wait({first, other}, timeout=WAIT)
        assert other.done()
        if taken:
            assert other.result() is True
        else:
            assert isinstance(other.exception(), DuplicateRun)
        del first, cancelled, other
        await recorder.close(WAIT)
        assert await _unreported(reported) == []

    asyncio.run(main())
