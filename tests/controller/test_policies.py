"""Policies of the dispatcher with the in-memory action (no processes): concurrency, retries
that outlive their task, shutdown, and listeners or actions that fail."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.controller.reconcile import account_for_slots
from reconciler.core import runs
from reconciler.core.desired import Definition
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import MANUAL_MAX, RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions, Outcome
from reconciler.runner.memory import ScriptedAction, ScriptedAttempt
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.helpers import definition

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "default/job"
FAILED = Outcome(RunStatus.FAILED, 1, "NonZeroExit", "exit code 1", "")


def task(**spec: Any) -> Definition:
    return definition("job", **spec)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` on the loop until it holds (the in-memory action has no events)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


async def settle(d: Dispatcher, action: ScriptedAction) -> None:
    """Finish every attempt as it starts, until nothing is in flight."""

    deadline = asyncio.get_running_loop().time() + 5
    while d.active_count():
        assert asyncio.get_running_loop().time() < deadline, "runs still in flight"
        for attempt in action.running():
            attempt.finish()
        await asyncio.sleep(0.002)
    assert await d.drain(5)


def play(
    body: Callable[[Dispatcher, ScriptedAction], Coroutine[Any, Any, None]],
) -> MemoryRunStore:
    store = MemoryRunStore()

    async def main() -> None:
        action = ScriptedAction()
        d = Dispatcher(store, owner="h:1:x", clock=lambda: T0, actions=Actions([action]))
        await body(d, action)
        for attempt in action.attempts:
            attempt.finish()
        await d.shutdown(0)

    asyncio.run(main())
    return store


def attempts(store: MemoryRunStore, slot: datetime = T0) -> list[tuple[Any, ...]]:
    return [(a.attempt, a.status, a.reason, a.trigger) for a in store.attempts(run_id(KEY, slot))]


@pytest.mark.parametrize(
    ("policy", "first", "second"),
    [
        ("Forbid", (RunStatus.SUCCEEDED, None), (RunStatus.SKIPPED, "ConcurrencyForbid")),
        ("Replace", (RunStatus.FAILED, "Replaced"), (RunStatus.SUCCEEDED, None)),
        ("Allow", (RunStatus.SUCCEEDED, None), (RunStatus.SUCCEEDED, None)),
    ],
)
def test_concurrency_policies_without_processes(
    policy: str, first: tuple[RunStatus, str | None], second: tuple[RunStatus, str | None]
) -> None:
    later = T0 + timedelta(minutes=1)
    job = task(concurrencyPolicy=policy)

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        d.fire(job, later)
        await settle(d, action)

    store = play(body)
    runs = [store.get(run_id(KEY, T0)), store.get(run_id(KEY, later))]
    assert [(r.status, r.reason) for r in runs if r] == [first, second]


def test_a_listener_that_raises_costs_neither_the_run_nor_the_other_listeners(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[RunStatus] = []

    def broken(record: RunRecord) -> None:
        raise RuntimeError("listener bug")

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.subscribe(broken)
        d.subscribe(lambda r: seen.append(r.status))
        d.fire(task(), T0)
        await until(lambda: len(action.running()) == 1)
        action.attempts[0].finish()
        assert await d.drain(5)

    with caplog.at_level(logging.ERROR):
        store = play(body)
    assert attempts(store) == [(1, RunStatus.SUCCEEDED, None, Trigger.SCHEDULE)]
    assert seen == [RunStatus.RUNNING, RunStatus.SUCCEEDED]
    assert sum("run listener failed" in r.getMessage() for r in caplog.records) == 2


def test_an_action_that_raises_fails_its_attempt_and_nothing_else() -> None:
    class Broken(ScriptedAction):
        def attempt(self, definition: Definition, record: RunRecord) -> ScriptedAttempt:
            raise ValueError("cannot build the attempt")

    store = MemoryRunStore()

    async def main() -> None:
        d = Dispatcher(store, owner="h:1:x", clock=lambda: T0, actions=Actions([Broken()]))
        d.fire(task(), T0)
        d.fire(definition("other"), T0)
        assert await d.drain(5)
        await d.shutdown(0)

    asyncio.run(main())
    for key in (KEY, "default/other"):
        record = store.get(run_id(key, T0))
        assert record is not None
        assert (record.status, record.reason) == (RunStatus.FAILED, "ActionError")
        assert "cannot build the attempt" in (record.message or "")


@pytest.mark.parametrize(
    ("operation", "reason"), [(Operation.REMOVE, "TaskRemoved"), (Operation.UPDATE, "TaskChanged")]
)
def test_a_removed_or_changed_task_does_not_retry(operation: Operation, reason: str) -> None:
    job = task(retry={"limit": 3, "backoffSeconds": 3600})
    changed = task(schedule="*/5 * * * *", retry={"limit": 3, "backoffSeconds": 3600})

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        action.attempts[0].finish(FAILED)
        await until(lambda: bool(d.waiting(KEY)))
        desired = None if operation is Operation.REMOVE else changed
        step = Step(operation, KEY, desired, job)
        scheduler = MemoryScheduler(lambda k, at: None, T0)
        account_for_slots([step], scheduler, d, T0)
        assert await d.drain(5)  # nothing waits any more
        assert len(action.attempts) == 1  # the retry never started

    store = play(body)
    assert attempts(store) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.SKIPPED, reason, Trigger.RETRY),
    ]


def test_shutdown_cancels_waiting_retries_at_once_and_records_them() -> None:
    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(task(retry={"limit": 2, "backoffSeconds": 86400}), T0)
        await until(lambda: len(action.running()) == 1)
        action.attempts[0].finish(FAILED)
        await until(lambda: d.active_count() == 1 and not action.running())
        # A grace far longer than the test: shutdown must not wait for a retry that waits.
        await asyncio.wait_for(d.shutdown(3600), timeout=10)
        assert d.active_count() == 0

    store = play(body)
    assert attempts(store) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.INTERRUPTED, "Shutdown", Trigger.RETRY),
    ]


def failed_ends_held() -> tuple[MemoryRunStore, threading.Event, threading.Event]:
    """A store whose save of a failed attempt's end waits for ``release``; ``saving`` is set
    when one has begun (the record is on its way to the store)."""
    store = MemoryRunStore()
    saving, release = threading.Event(), threading.Event()
    save_many = store.save_many

    def slow_save(records: Any) -> list[RunRecord]:
        if any(r.status is RunStatus.FAILED for r in records):
            saving.set()
            release.wait(10)
        return save_many(records)

    store.save_many = slow_save  # type: ignore[method-assign]
    return store, saving, release


def test_shutdown_while_a_failed_attempt_is_recorded_does_not_wait_for_its_retry() -> None:
    """The attempt has ended and its record is on its way to the store when shutdown begins:
    the run is neither running nor waiting yet, and its retry must not wait out the grace."""
    store, saving, release = failed_ends_held()

    async def main() -> None:
        action = ScriptedAction()
        d = Dispatcher(store, owner="h:1:x", clock=lambda: T0, actions=Actions([action]))
        d.fire(task(retry={"limit": 2, "backoffSeconds": 86400}), T0)
        await until(lambda: len(action.running()) == 1)
        action.attempts[0].finish(FAILED)
        await until(saving.is_set)
        stopping = asyncio.create_task(d.shutdown(3600))
        await asyncio.sleep(0.05)  # shutdown looks at the runs while the record is being saved
        assert not stopping.done()
        release.set()
        await asyncio.wait_for(stopping, timeout=10)

    asyncio.run(main())
    assert attempts(store) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.INTERRUPTED, "Shutdown", Trigger.RETRY),
    ]


def test_a_replace_while_a_failed_attempt_is_recorded_records_the_retry_it_cancels() -> None:
    """The next slot replaces the run while its failed attempt's record is on its way to the
    store: the retry that will not happen is recorded as its attempt, as when it waits."""
    store, saving, release = failed_ends_held()
    later = T0 + timedelta(minutes=1)
    job = task(concurrencyPolicy="Replace", retry={"limit": 2, "backoffSeconds": 0})

    async def main() -> None:
        action = ScriptedAction()
        d = Dispatcher(store, owner="h:1:x", clock=lambda: later, actions=Actions([action]))
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        action.attempts[0].finish(FAILED)
        await until(saving.is_set)
        d.fire(job, later)  # Replace: stops the run whose record is being saved
        release.set()
        await settle(d, action)
        await d.shutdown(0)

    asyncio.run(main())
    assert attempts(store) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.SKIPPED, "Replaced", Trigger.RETRY),
    ]
    assert attempts(store, later) == [(1, RunStatus.SUCCEEDED, None, Trigger.SCHEDULE)]


def test_an_attempt_stopped_itself_gets_no_retry_record() -> None:
    """Replaced while it runs: its own record says so, and no retry is recorded after it."""
    later = T0 + timedelta(minutes=1)
    job = task(concurrencyPolicy="Replace", retry={"limit": 2, "backoffSeconds": 0})

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        d.fire(job, later)
        await settle(d, action)

    store = play(body)
    assert attempts(store) == [(1, RunStatus.FAILED, "Replaced", Trigger.SCHEDULE)]


# -- replicas: a paused replica, and runs another replica started -----------------------------


def foreign_run(store: MemoryRunStore, slot: datetime) -> RunRecord:
    record = RunRecord(
        id=run_id(KEY, slot),
        task=KEY,
        scheduled_at=slot,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        started_at=slot,
        owner="other-host:7:gone",
    )
    store.claim(record)
    return record


def with_handover(d: Dispatcher, store: MemoryRunStore) -> Handover:
    d.handover = Handover(store, d.owner, d.recorder.call, poll=0.01)
    return d.handover


def test_a_paused_replica_neither_runs_nor_records_a_slot() -> None:
    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.paused = "membership not renewed for 11s"
        record = d.fire(task(), T0)
        assert (record.status, record.reason) == (RunStatus.SKIPPED, "NotStarted")
        assert "membership not renewed" in (record.message or "")
        await asyncio.sleep(0)
        assert action.attempts == []
        d.paused = None
        d.fire(task(), T0 + timedelta(minutes=1))
        await settle(d, action)

    store = play(body)
    assert store.get(run_id(KEY, T0)) is None
    # Resumed: the next slot runs, and the one dropped while paused is no Superseded record.
    assert [r.scheduled_at for r in store.query(RunQuery(task=KEY, limit=10)).items] == [
        T0 + timedelta(minutes=1)
    ]


def test_a_retry_due_while_paused_waits_until_the_replica_may_start_runs_again() -> None:
    """A replica cut off from the membership stops starting runs: its retries too. The retry
    keeps its slot meanwhile and runs once the renewal works again."""

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(task(retry={"limit": 1, "backoffSeconds": 0}), T0)
        await until(lambda: len(action.running()) == 1)
        d.paused = "membership not renewed for 11s"
        action.attempts[0].finish(FAILED)
        await until(lambda: bool(d.waiting(KEY)))  # held: due, not started
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(action.attempts) == 1
        d.paused = None
        await until(lambda: len(action.attempts) == 2)
        await settle(d, action)

    store = play(body)
    assert attempts(store) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.SUCCEEDED, None, Trigger.RETRY),
    ]


def test_a_retry_held_while_paused_is_recorded_when_its_task_moves_away() -> None:
    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        job = task(retry={"limit": 1, "backoffSeconds": 0})
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        d.paused = "membership not renewed for 11s"
        action.attempts[0].finish(FAILED)
        await until(lambda: bool(d.waiting(KEY)))
        scheduler = MemoryScheduler(lambda k, at: None, T0)
        account_for_slots([Step(Operation.REMOVE, KEY, None, job)], scheduler, d, T0)
        assert await d.drain(5)
        assert len(action.attempts) == 1  # the retry never started

    store = play(body)
    assert attempts(store) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.SKIPPED, "TaskRemoved", Trigger.RETRY),
    ]


def test_an_inherited_task_under_forbid_skips_while_another_replica_runs_it() -> None:
    later = T0 + timedelta(minutes=1)

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        store = cast(MemoryRunStore, d.recorder.store)
        old = foreign_run(store, T0)
        with_handover(d, store).inherit(KEY)
        d.fire(task(), later)
        assert await d.drain(5)
        assert action.attempts == []
        store.complete(dataclasses.replace(old, status=RunStatus.SUCCEEDED, finished_at=later))
        d.fire(task(), later + timedelta(minutes=1))
        await settle(d, action)
        assert d.handover is not None
        assert not d.handover.inherited(KEY)

    store = play(body)
    skipped = store.get(run_id(KEY, later))
    assert skipped is not None
    assert (skipped.status, skipped.reason) == (RunStatus.SKIPPED, "ConcurrencyForbid")
    assert "on other-host:7:gone" in (skipped.message or "")
    ran = store.get(run_id(KEY, later + timedelta(minutes=1)))
    assert ran is not None
    assert ran.status is RunStatus.SUCCEEDED


def test_a_manual_run_looks_for_another_replica_s_run_first() -> None:
    """A manual run (the API, a run-now annotation) under Forbid, while a run of the task goes
    on another replica: the store is asked first, and the manual run is skipped."""

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        store = cast(MemoryRunStore, d.recorder.store)
        foreign_run(store, T0 - timedelta(minutes=1))  # still going there
        with_handover(d, store)
        record = d.fire_manual(task())
        assert record.trigger is Trigger.MANUAL
        assert await d.drain(5)
        assert action.attempts == []

    store = play(body)
    manual = [r for r in store.query(RunQuery(task=KEY, limit=10)).items if r.trigger == "manual"]
    assert [(r.status, r.reason) for r in manual] == [(RunStatus.SKIPPED, "ConcurrencyForbid")]


def test_an_inherited_task_under_replace_asks_the_other_replica_to_stop_first() -> None:
    later = T0 + timedelta(minutes=1)
    job = task(concurrencyPolicy="Replace")

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        store = cast(MemoryRunStore, d.recorder.store)
        old = foreign_run(store, T0)
        with_handover(d, store).inherit(KEY)
        d.fire(job, later)
        # The other replica sees the request (as its membership loop polls) and stops its run.
        await until(lambda: bool(store.stop_requests("other-host:7:gone")))
        assert store.stop_requests("other-host:7:gone") == [(old.id, 1, "Replaced")]
        assert action.attempts == []  # the new run waits for the old one to end
        store.complete(dataclasses.replace(old, status=RunStatus.FAILED, reason="Replaced"))
        await settle(d, action)

    store = play(body)
    ran = store.get(run_id(KEY, later))
    assert ran is not None
    assert ran.status is RunStatus.SUCCEEDED


def test_a_stop_request_stops_the_local_run() -> None:
    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(task(), T0)
        await until(lambda: len(action.running()) == 1)
        assert d.stop_run(run_id(KEY, T0), "Replaced")
        assert not d.stop_run("no-such-run", "Replaced")
        assert await d.drain(5)

    store = play(body)
    record = store.get(run_id(KEY, T0))
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.FAILED, "Replaced")


def test_manual_runs_going_at_once_are_bounded_and_the_rest_skipped() -> None:
    """An operator's loop of requests on an Allow task started a process each until crontask's
    file descriptors ran out: every other task's starts and the store failed."""
    store = MemoryRunStore()
    ticks = iter(range(1, 10_000))

    async def main() -> None:
        action = ScriptedAction()

        def clock() -> datetime:  # every request a moment of its own: a run of its own
            return T0 + timedelta(milliseconds=next(ticks))

        d = Dispatcher(store, owner="h:1:x", clock=clock, actions=Actions([action]))
        allow = task(concurrencyPolicy="Allow")
        asked = [d.fire_manual(allow) for _ in range(MANUAL_MAX + 2)]
        others = [d.fire_manual(definition(f"t{n}", concurrencyPolicy="Allow")) for n in range(9)]
        assert [r.status for r in asked].count(RunStatus.RUNNING) == MANUAL_MAX
        assert {(r.status, r.reason) for r in asked[MANUAL_MAX:]} == {
            (RunStatus.SKIPPED, "TooManyManualRuns")
        }
        assert {r.status for r in others} == {RunStatus.RUNNING}  # other tasks' are not held
        await until(lambda: len(action.running()) == MANUAL_MAX + 9)
        # One of this task's ended (not another task's, which would free nothing), and the
        # dispatcher has let it go (its attempt's end alone is not yet that): room for one more.
        next(a for a in action.running() if a.record.task == KEY).finish()
        await until(lambda: len(d.active(KEY)) == MANUAL_MAX - 1)
        assert d.fire_manual(allow).status is RunStatus.RUNNING
        await settle(d, action)
        await d.shutdown(0)

    asyncio.run(main())
    skipped = [r for r in store.query(RunQuery(task=KEY, limit=100)).items if r.status == "skipped"]
    assert len(skipped) == 2
    assert skipped[0].message is not None
    assert skipped[0].message.startswith("manual runs going: 10 of this task (at most 10 a")


def test_manual_runs_of_all_tasks_are_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "MANUAL_MAX_TOTAL", 3)
    ticks = iter(range(1, 100))

    async def main() -> None:
        action = ScriptedAction()
        clock = lambda: T0 + timedelta(milliseconds=next(ticks))  # noqa: E731
        d = Dispatcher(MemoryRunStore(), owner="h:1:x", clock=clock, actions=Actions([action]))
        asked = [d.fire_manual(definition(f"t{n}", concurrencyPolicy="Allow")) for n in range(4)]
        assert [(r.status, r.reason) for r in asked[2:]] == [
            (RunStatus.RUNNING, None),
            (RunStatus.SKIPPED, "TooManyManualRuns"),
        ]
        await settle(d, action)
        await d.shutdown(0)

    asyncio.run(main())
