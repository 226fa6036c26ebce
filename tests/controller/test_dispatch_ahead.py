"""Slots handed over ahead of their instant (``Dispatcher.due``): decided and claimed at once,
started on the slot; or, when what the slot becomes depends on what happens until then,
decided at the slot.

The dispatcher's clock here is the loop's clock shifted to a fixed date, so the slot a test
names is a real instant of the loop: the waits are real, and short.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import account_for_slots
from reconciler.core.desired import Definition
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.runner.base import Actions, Outcome
from reconciler.scheduling.apscheduler import ApsScheduler
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.store import MemoryRunStore
from tests.helpers import definition

EPOCH = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "default/job"


@dataclasses.dataclass
class Began:
    run: str
    at: float  # the loop's clock
    claimed: bool  # the store held the run's claim when it began


class Gated:
    """The ``command`` action's stand-in: each attempt notes when it began, and the attempts
    of the slots in ``held`` run until ``release`` is set."""

    field = "command"

    def __init__(self, store: MemoryRunStore) -> None:
        self.store = store
        self.began: list[Began] = []
        self.held: set[datetime] = set()
        self.release = asyncio.Event()

    def attempt(self, definition: Definition, record: RunRecord) -> _Attempt:
        return _Attempt(self, record)


class _Attempt:
    def __init__(self, action: Gated, record: RunRecord) -> None:
        self.action = action
        self.record = record

    async def run(self) -> Outcome:
        action, record = self.action, self.record
        claimed = action.store.get(record.id) is not None
        action.began.append(Began(record.id, asyncio.get_running_loop().time(), claimed))
        if record.scheduled_at in action.held:
            await action.release.wait()
        return Outcome(RunStatus.SUCCEEDED, 0, None, "exit code 0", "")

    def stop(self, reason: str) -> None:
        self.action.release.set()


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def setup(**spec: Any) -> tuple[Dispatcher, Gated, MemoryRunStore, Definition, float]:
    """A dispatcher whose clock reads EPOCH at the loop time returned, read last: building
    the definition may take longer than a test's 0.2 s under load, and a slot meant to be ahead
    would then be past when handed over."""
    loop = asyncio.get_running_loop()
    store = MemoryRunStore()
    action = Gated(store)

    def clock() -> datetime:
        return EPOCH + timedelta(seconds=loop.time() - origin)

    d = Dispatcher(store, owner="host:1:abc", clock=clock, actions=Actions([action]))
    job = definition("job", command={"args": ["true"]}, **spec)
    origin = loop.time()
    return d, action, store, job, origin


def hold_a_run(d: Dispatcher, action: Gated, job: Definition) -> datetime:
    """Start a run of ``job`` (the slot a second before EPOCH) that goes on until released."""
    previous = EPOCH - timedelta(seconds=1)
    action.held.add(previous)
    d.fire(job, previous)
    return previous


def test_a_slot_handed_over_ahead_is_claimed_now_and_starts_on_the_slot() -> None:
    async def scenario() -> None:
        d, action, store, job, origin = setup()
        heard: list[RunRecord] = []
        d.subscribe(heard.append)
        slot = EPOCH + timedelta(seconds=0.3)
        d.due(job, slot)
        (running,) = d.active(KEY)
        assert running.started_at == slot  # when it will start, not when it was decided
        # The claim is written ahead: the store holds it well before the slot.
        while store.get(run_id(KEY, slot)) is None:
            await asyncio.sleep(0.005)
        assert asyncio.get_running_loop().time() - origin < 0.25
        assert action.began == []
        assert heard == []  # the listeners hear the run when its work begins
        assert await d.drain(5)
        (began,) = action.began
        assert began.at >= origin + 0.3
        assert began.claimed
        started, ended = heard
        assert started.status is RunStatus.RUNNING
        assert started.started_at is not None
        assert slot <= started.started_at <= EPOCH + timedelta(seconds=began.at - origin)
        record = store.get(run_id(KEY, slot))
        assert record == ended
        assert record.status is RunStatus.SUCCEEDED
        assert record.started_at == started.started_at
        await d.shutdown(0)

    run(scenario())


def test_a_run_decided_ahead_whose_work_began_late_says_when_it_began() -> None:
    """The loop is busy across the slot, so the work begins 0.3 s late: the run's record and
    the start delay in the metrics say so (they read the slot before)."""

    async def scenario() -> None:
        d, _, store, job, origin = setup()
        metrics = Metrics(MemoryTasks())
        d.subscribe(metrics.on_run)
        slot = EPOCH + timedelta(seconds=0.2)
        d.due(job, slot)
        asyncio.get_running_loop().call_at(origin + 0.15, time.sleep, 0.35)
        assert await d.drain(5)
        record = store.get(run_id(KEY, slot))
        assert record is not None
        assert record.status is RunStatus.SUCCEEDED
        assert record.started_at is not None
        late = (record.started_at - slot).total_seconds()
        assert late >= 0.3
        body, _ = metrics.render()
        found = {
            sample.name: sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if not sample.labels
        }
        assert found["crontask_run_start_delay_seconds_count"] == 1
        assert found["crontask_run_start_delay_seconds_sum"] == pytest.approx(late)
        await d.shutdown(0)

    run(scenario())


class Spawning:
    """A command's stand-in that waits for its instant itself (``StartsAt``), as a command's
    spawner does: its "process" starts ``lag`` seconds after the instant, and it says so.
    Its attempt then reports progress with its own copy of the record, as a Job's does."""

    field = "command"

    def __init__(self, dispatcher: Dispatcher, lag: float) -> None:
        self.dispatcher = dispatcher
        self.lag = lag

    def attempt(self, definition: Definition, record: RunRecord) -> _Spawned:
        return _Spawned(self, record)


class _Spawned:
    def __init__(self, action: Spawning, record: RunRecord) -> None:
        self.action = action
        self.record = record
        self.when: float | None = None
        self.began: Callable[[float], None] | None = None

    def start_at(
        self, when: float | None, began: Callable[[float], None], until: float | None = None
    ) -> None:
        self.when, self.began = when, began

    async def run(self) -> Outcome:
        assert self.when is not None
        assert self.began is not None
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.when + self.action.lag - loop.time())
        self.began(loop.time())
        await self.action.dispatcher.progress(self.record)  # the attempt's older copy
        return Outcome(RunStatus.SUCCEEDED, 0, None, "exit code 0", "")

    def stop(self, reason: str) -> None:
        pass


def test_a_started_process_moves_the_record_start_for_good() -> None:
    """An action that starts its own work (a command's spawner) says when it did: the record
    the listeners hear and the one stored say so, whatever the attempt reports meanwhile."""

    async def scenario() -> None:
        d, _, store, job, _ = setup()
        d.actions = Actions([Spawning(d, lag=0.25)])
        heard: list[RunRecord] = []
        d.subscribe(heard.append)
        slot = EPOCH + timedelta(seconds=0.1)
        d.due(job, slot)
        assert await d.drain(5)
        started, ended = heard
        stored = store.get(run_id(KEY, slot))
        assert stored == ended
        for record in (started, ended):
            assert record.started_at is not None
            assert (record.started_at - slot).total_seconds() == pytest.approx(0.25, abs=0.05)
        assert ended.started_at == started.started_at
        await d.shutdown(0)

    run(scenario())


def test_a_run_stopped_before_its_slot_was_never_heard_running() -> None:
    async def scenario() -> None:
        d, _, _, job, _ = setup()
        metrics = Metrics(MemoryTasks())
        d.subscribe(metrics.on_run)
        heard: list[RunRecord] = []
        d.subscribe(heard.append)
        slot = EPOCH + timedelta(seconds=0.3)
        d.due(job, slot)
        await asyncio.sleep(0.1)
        assert d.stop_run(run_id(KEY, slot), "Replaced")
        assert await d.drain(5)
        (ended,) = heard  # its end only: its work never began
        assert ended.status is not RunStatus.RUNNING
        assert ended.started_at is None  # not its slot (a command's end comes before it)
        assert metrics.scrape().runs[KEY].running == {}
        await d.shutdown(0)

    run(scenario())


def test_a_slot_whose_run_depends_on_a_run_in_progress_is_decided_at_the_slot() -> None:
    """Forbid, with the previous run still running when the slot is handed over: deciding
    then would skip it. The previous run ends before the slot, so the slot runs."""

    async def scenario() -> None:
        d, action, store, job, origin = setup(concurrencyPolicy="Forbid")
        previous = hold_a_run(d, action, job)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not action.began and loop.time() < deadline:  # the previous run's work begins
            await asyncio.sleep(0.005)
        assert [b.run for b in action.began] == [run_id(KEY, previous)]
        # The slot a second from now, not from ``origin``: a loaded machine may have spent
        # a fixed lead already, and the slot would be decided at once (and skipped).
        at = loop.time() - origin + 1.0
        slot = EPOCH + timedelta(seconds=at)
        d.due(job, slot)
        assert store.get(run_id(KEY, slot)) is None  # nothing decided, nothing claimed
        action.release.set()  # the previous run ends before the slot
        assert await d.drain(5)  # a slot deferred to its instant is not a run yet
        await asyncio.sleep(origin + at + 0.05 - loop.time())
        assert await d.drain(5)
        record = store.get(run_id(KEY, slot))
        assert record is not None
        assert record.status is RunStatus.SUCCEEDED, record
        assert action.began[-1].at >= origin + at
        await d.shutdown(0)

    run(scenario())


def test_the_same_slot_still_in_progress_at_its_instant_is_skipped_as_before() -> None:
    async def scenario() -> None:
        d, action, store, job, origin = setup(concurrencyPolicy="Forbid")
        hold_a_run(d, action, job)
        slot = EPOCH + timedelta(seconds=0.2)
        d.due(job, slot)
        await asyncio.sleep(origin + 0.3 - asyncio.get_running_loop().time())
        record = store.get(run_id(KEY, slot))
        assert record is not None
        assert record.status is RunStatus.SKIPPED
        assert record.reason == "ConcurrencyForbid"
        action.release.set()
        await d.shutdown(1)

    run(scenario())


def test_a_deferred_slot_of_a_changed_task_is_not_decided_with_the_old_definition() -> None:
    """The pass that changes the task sets it aside before the scheduler changes the job;
    the changed job hands that slot over again if its schedule still has it."""

    async def scenario() -> None:
        d, action, store, job, origin = setup(concurrencyPolicy="Forbid")
        previous = hold_a_run(d, action, job)
        slot = EPOCH + timedelta(seconds=0.2)
        d.due(job, slot)
        d.before_change(KEY, changed=True)
        action.release.set()
        await asyncio.sleep(origin + 0.3 - asyncio.get_running_loop().time())
        assert await d.drain(5)
        assert store.get(run_id(KEY, slot)) is None
        assert [b.run for b in action.began] == [run_id(KEY, previous)]
        await d.shutdown(0)

    run(scenario())


def test_shutdown_leaves_deferred_slots_undecided() -> None:
    """Not handed over yet: no record, so the next start catches the slot up if it is due."""

    async def scenario() -> None:
        d, action, store, job, origin = setup(concurrencyPolicy="Forbid")
        hold_a_run(d, action, job)
        slot = EPOCH + timedelta(seconds=0.2)
        d.due(job, slot)
        await d.shutdown(0)  # stops the held run at once
        await asyncio.sleep(origin + 0.3 - asyncio.get_running_loop().time())
        assert store.get(run_id(KEY, slot)) is None

    run(scenario())


def test_a_slot_far_ahead_or_past_is_not_waited_for() -> None:
    """Only AHEAD_MAX ahead counts as ahead: a run fired at a slot further away (a clock
    stepped back) starts at once, as it always did."""

    async def scenario() -> None:
        d, action, store, job, origin = setup()
        far = EPOCH + timedelta(hours=1)
        d.due(job, far)
        assert await d.drain(5)
        (began,) = action.began
        assert began.at - origin < 0.5
        record = store.get(run_id(KEY, far))
        assert record is not None
        assert record.started_at is not None
        assert record.started_at < far
        await d.shutdown(0)

    run(scenario())


def test_a_deferred_slot_whose_instant_passed_before_the_change_is_decided_then() -> None:
    """The loop was busy past the slot, and the pass that changes the task comes after it:
    the scheduler handed that slot over already, so the change decides it (with the
    definition in force at its instant) rather than dropping it."""

    async def scenario() -> None:
        d, action, store, job, _ = setup(concurrencyPolicy="Forbid")
        hold_a_run(d, action, job)
        slot = EPOCH + timedelta(seconds=0.1)
        d.due(job, slot)
        time.sleep(0.15)  # the loop is busy past the slot (a long pass)
        d.before_change(KEY, changed=True)
        for _ in range(500):  # its record is written by the recorder's thread
            if store.get(run_id(KEY, slot)) is not None:
                break
            await asyncio.sleep(0.01)
        record = store.get(run_id(KEY, slot))
        assert record is not None
        assert record.status is RunStatus.SKIPPED
        assert record.reason == "ConcurrencyForbid"
        action.release.set()
        await d.shutdown(1)

    run(scenario())


def test_a_slot_that_passes_while_a_pass_changes_its_task_is_decided_once() -> None:
    """In the pass's order: the deferred slot is settled before the scheduler changes the
    job (still ahead: set aside), the changed job hands it over again, and the pass goes on
    past the slot. It is decided once, with the changed definition."""

    async def scenario() -> tuple[datetime, bool, list[tuple[datetime, list[str]]]]:
        store = MemoryRunStore()
        action = Gated(store)
        d = Dispatcher(store, owner="host:1:abc", actions=Actions([action]))
        decided: list[tuple[datetime, list[str]]] = []
        fire = d.fire

        def noting(definition: Definition, at: datetime, *args: Any) -> RunRecord:
            assert definition.task.spec.command is not None
            decided.append((at, list(definition.task.spec.command.args)))
            return fire(definition, at, *args)

        d.fire = noting  # type: ignore[method-assign,assignment]
        owned: dict[str, Definition] = {}
        scheduler = ApsScheduler(lambda key, at: d.due(owned[key], at))
        job = definition("job", schedule="* * * * * *", concurrencyPolicy="Forbid")
        changed = definition(
            "job",
            schedule="* * * * * *",
            concurrencyPolicy="Forbid",
            command={"args": ["true", "2"]},
        )
        owned[KEY] = job
        scheduler.apply(Step(Operation.ADD, KEY, job, None))
        scheduler.start()
        hold_a_run(d, action, job)  # a run in progress: the next slot is set aside
        while not d._deferred:
            await asyncio.sleep(0.001)
        (slot,) = d._deferred[KEY]
        step = Step(Operation.UPDATE, KEY, changed, job)
        ahead = datetime.now(UTC) < slot  # 50 ms of lead: unless the machine stalled
        d.before_change(KEY, changed=True)  # as Reconciler.apply does, then the scheduler
        scheduler.apply(step)
        owned[KEY] = changed
        while datetime.now(UTC) <= slot:  # the rest of a long pass
            time.sleep(0.001)
        account_for_slots([step], scheduler, d, datetime.now(UTC))
        action.release.set()
        await asyncio.sleep(0.3)
        scheduler.shutdown()
        await d.shutdown(1)
        return slot, ahead, [(at, args) for at, args in decided if at == slot]

    slot, ahead, decisions = asyncio.run(scenario())
    # Set aside before its instant, the changed job decides it; past it (a stalled machine),
    # it is decided as it stood. Once either way.
    assert decisions == [(slot, ["true", "2"] if ahead else ["true"])]
