"""A run decided as its slot fires (not ahead) whose start then waits: for the run it replaces to
die (``Replace``: TERM, then KILL after the kill grace), or for its claim (a store slow to
answer). It is looked at again before it starts (``LateStarts._waited``), as a run decided
ahead is as its slot comes: past its startingDeadlineSeconds it is skipped ``MissedDeadline``,
its wait for the run it replaces not counted (decided within its deadline, the slot stopped that
run: as a CronJob's, it runs); its task removed, changed or moved meanwhile, it is skipped with
that reason. Before, it started on its old decision, with a deleted definition, seconds past its
deadline; and then a slot whose replaced run ignored SIGTERM past its deadline stopped that run
and did not start itself.

The dispatcher's clock is the loop's shifted to a fixed date, plus ``jump`` (``Away``): the
kill grace or the slow claim passes at once.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import account_for_slots
from reconciler.core.desired import Definition
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.runner.base import Actions, Outcome, failed
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.store import MemoryRunStore
from tests.controller.test_dispatch_ahead import EPOCH, KEY
from tests.controller.test_dispatch_late import OWNER, Away
from tests.controller.test_policies import until
from tests.helpers import definition

NEXT = EPOCH + timedelta(seconds=15)  # the slot that replaces the run of EPOCH


class Stubborn:
    """The ``command`` action's stand-in for ``trap '' TERM; sleep 100``: asked to stop, an
    attempt goes on until ``kill`` is set (its kill grace's SIGKILL)."""

    field = "command"

    def __init__(self) -> None:
        self.began: list[RunRecord] = []
        self.kill = asyncio.Event()

    def attempt(self, definition: Definition, record: RunRecord) -> _Stubborn:
        return _Stubborn(self, record)


class _Stubborn:
    def __init__(self, action: Stubborn, record: RunRecord) -> None:
        self.action = action
        self.record = record
        self.stopped: str | None = None

    async def run(self) -> Outcome:
        if self.stopped is not None:
            return failed(self.stopped, f"stopped before it started: {self.stopped}")
        self.action.began.append(self.record)
        await self.action.kill.wait()
        if self.stopped is not None:
            return failed(self.stopped, f"stopped: {self.stopped} (SIGKILL after grace)")
        return SUCCESS

    def stop(self, reason: str) -> None:
        self.stopped = self.stopped or reason


def replace(**spec: Any) -> Definition:
    return definition("job", schedule="*/15 * * * * *", concurrencyPolicy="Replace", **spec)


async def replacing(job: Definition) -> tuple[Dispatcher, Stubborn, MemoryRunStore, Away]:
    """The run of EPOCH going, and the slot 15 s later decided as it fires: it waits for that
    run, which ignores its SIGTERM."""
    store = MemoryRunStore()
    action = Stubborn()
    clock = Away()
    d = Dispatcher(store, owner=OWNER, clock=clock, actions=Actions([action]))
    d.fire(job, EPOCH)
    await until(lambda: len(action.began) == 1)
    clock.jump(15)
    assert d.fire(job, NEXT).status is RunStatus.RUNNING  # decided: it replaces the first
    return d, action, store, clock


def test_a_replacing_run_decided_within_its_deadline_starts_once_the_old_one_died() -> None:
    """The replaced run dies 8 s after the slot (its kill grace), startingDeadlineSeconds 2:
    the slot was decided within its deadline and stopped that run, so it runs (it was
    skipped ``MissedDeadline``: the slot stopped a run and ran nothing)."""

    async def scenario() -> tuple[list[RunRecord], RunRecord | None, RunRecord | None]:
        d, action, store, clock = await replacing(replace(startingDeadlineSeconds=2))
        clock.jump(8)
        action.kill.set()
        assert await d.drain(5)
        await d.shutdown(0)
        return action.began, store.get(run_id(KEY, EPOCH)), store.get(run_id(KEY, NEXT))

    began, old, record = asyncio.run(scenario())
    assert [r.scheduled_at for r in began] == [EPOCH, NEXT]
    assert old is not None
    assert (old.status, old.reason) == (RunStatus.FAILED, "Replaced")
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SUCCEEDED, None)


class SlowSecondClaim(MemoryRunStore):
    """A store that answers the claim of the slot ``NEXT`` only once ``answer`` is set (a lock
    held elsewhere, a slow disk); ``asked`` is set when it is on its way."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = threading.Event()
        self.answer = threading.Event()

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        if any(r.scheduled_at == NEXT for r in records):
            self.asked.set()
            self.answer.wait(10)
        return super().claim_many(records)


def test_a_replacing_run_whose_claim_then_came_past_its_deadline_does_not_start() -> None:
    """The replaced run dies 8 s after the slot, then the new run's claim is answered 5 s
    later, startingDeadlineSeconds 2: the wait for the claim counts, the one for the run it
    replaced does not; its record says both."""

    async def scenario() -> tuple[list[RunRecord], RunRecord | None]:
        job = replace(startingDeadlineSeconds=2)
        store = SlowSecondClaim()
        action = Stubborn()
        clock = Away()
        d = Dispatcher(store, owner=OWNER, clock=clock, actions=Actions([action]))
        d.fire(job, EPOCH)
        await until(lambda: len(action.began) == 1)
        clock.jump(15)
        assert d.fire(job, NEXT).status is RunStatus.RUNNING
        clock.jump(8)
        action.kill.set()
        await until(store.asked.is_set)
        clock.jump(5)
        store.answer.set()
        assert await d.drain(5)
        await d.shutdown(0)
        return action.began, store.get(run_id(KEY, NEXT))

    began, record = asyncio.run(scenario())
    assert [r.scheduled_at for r in began] == [EPOCH]  # the new run never began
    assert record is not None
    assert (record.status, record.reason, record.started_at) == (
        RunStatus.SKIPPED,
        "MissedDeadline",
        None,
    )
    # 13 s of the clock's jumps, 8 of them waiting for the replaced run, and the real time the
    # loop took (more on a loaded machine).
    said = re.fullmatch(
        r"not started: (\d+\.\d)s after its slot, past startingDeadlineSeconds=2 \(not counting "
        r"the (\d+\.\d)s it waited for the runs it replaces to end\)",
        record.message or "",
    )
    assert said is not None, record.message
    assert float(said.group(1)) >= 13.0
    assert 8.0 <= float(said.group(2)) < float(said.group(1)) - 2


def test_a_replacing_run_within_its_deadline_starts_as_before() -> None:
    async def scenario() -> tuple[list[RunRecord], RunRecord | None]:
        d, action, store, clock = await replacing(replace(startingDeadlineSeconds=10))
        clock.jump(8)
        action.kill.set()
        assert await d.drain(5)
        await d.shutdown(0)
        return action.began, store.get(run_id(KEY, NEXT))

    began, record = asyncio.run(scenario())
    assert [r.scheduled_at for r in began] == [EPOCH, NEXT]
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("operation", "elsewhere", "reason", "why"),
    [
        (Operation.REMOVE, False, "TaskRemoved", "the task was removed"),
        (Operation.REMOVE, True, "HandedOver", "the task moved to another replica"),
        (Operation.UPDATE, False, "TaskChanged", "the task's definition changed"),
    ],
)
def test_a_replacing_run_whose_task_went_while_it_waited_does_not_start(
    operation: Operation, elsewhere: bool, reason: str, why: str
) -> None:
    """Removed 2 s after the slot, while the replaced run ignores its SIGTERM: once that run
    is killed, the new one does not start with the definition no longer in force."""
    job = replace()
    changed = replace(command={"args": ["echo", "changed"]})

    async def scenario() -> tuple[list[RunRecord], RunRecord | None]:
        d, action, store, clock = await replacing(job)
        clock.jump(2)
        desired = None if operation is Operation.REMOVE else changed
        scheduler = MemoryScheduler(lambda key, at: None, clock())
        account_for_slots(
            [Step(operation, KEY, desired, job)],
            scheduler,
            d,
            clock(),
            elsewhere=lambda k: elsewhere,
        )
        clock.jump(6)
        action.kill.set()
        assert await d.drain(5)
        await d.shutdown(0)
        return action.began, store.get(run_id(KEY, NEXT))

    began, record = asyncio.run(scenario())
    assert [r.scheduled_at for r in began] == [EPOCH]
    assert record is not None
    assert (record.status, record.reason, record.started_at) == (RunStatus.SKIPPED, reason, None)
    assert record.message == f"{why} before this run could start; it did not start"


class SlowClaims(MemoryRunStore):
    """A store whose claims are answered only once ``answer`` is set (a lock held elsewhere, a
    slow disk); ``asked`` is set when one is on its way."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = threading.Event()
        self.answer = threading.Event()

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        self.asked.set()
        self.answer.wait(10)
        return super().claim_many(records)


def slow_claim(**spec: Any) -> tuple[RunRecord | None, int]:
    """A run decided as its slot fires, whose claim is answered 20 s later."""

    async def scenario() -> tuple[RunRecord | None, int]:
        store = SlowClaims()
        action = ScriptedAction(auto=SUCCESS)
        clock = Away()
        d = Dispatcher(store, owner=OWNER, clock=clock, actions=Actions([action]))
        d.fire(definition("job", **spec), EPOCH)
        await until(store.asked.is_set)
        clock.jump(20)
        store.answer.set()
        assert await d.drain(5)
        await d.shutdown(0)
        return store.get(run_id(KEY, EPOCH)), sum(a.started for a in action.attempts)

    return asyncio.run(scenario())


def test_a_run_whose_claim_came_past_its_deadline_does_not_start() -> None:
    record, began = slow_claim(startingDeadlineSeconds=2)
    assert began == 0
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, "MissedDeadline")


def test_a_run_whose_claim_came_late_without_a_deadline_still_starts() -> None:
    record, began = slow_claim()
    assert began == 1
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED


def test_a_replacing_run_is_credited_its_wait_only_up_to_what_a_stop_may_take() -> None:
    """The replaced run ends 30 s after the slot, far past what its stop may take (its kill
    grace, its end record's answer, a look: 13 s with the defaults): crontask was away
    meanwhile (frozen, suspended), not waiting for a stop, and the rest counts against
    startingDeadlineSeconds 2. A slot was started 15 s late after a 15 s SIGSTOP."""

    async def scenario() -> tuple[list[RunRecord], RunRecord | None]:
        d, action, store, clock = await replacing(replace(startingDeadlineSeconds=2))
        clock.jump(30)
        action.kill.set()
        assert await d.drain(5)
        await d.shutdown(0)
        return action.began, store.get(run_id(KEY, NEXT))

    began, record = asyncio.run(scenario())
    assert [r.scheduled_at for r in began] == [EPOCH]  # the new run never began
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, "MissedDeadline")
    assert "(not counting the 13.0s it waited for the runs it replaces to end)" in (
        record.message or ""
    ), record.message
