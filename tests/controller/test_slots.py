"""Every slot accounted for: retries, catch-up after downtime, slots skipped while busy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.core.timing import COUNTED
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.helpers import definition, local_actions

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def scenario(
    store: MemoryRunStore,
    body: Callable[[Dispatcher], Coroutine[Any, Any, None]],
    now: datetime = T0,
) -> None:
    async def main() -> None:
        d = Dispatcher(
            store, owner="h:1:x", clock=lambda: now, actions=local_actions(kill_grace=0.5)
        )
        await body(d)
        assert await d.drain(20)
        await d.shutdown(0)

    asyncio.run(main())


def history(store: MemoryRunStore, task: str = "default/job") -> list[RunRecord]:
    items = store.query(RunQuery(task=task, limit=1000)).items
    return sorted(items, key=lambda r: (r.scheduled_at, r.attempt))


def job(script: str, **spec: Any) -> Definition:
    return definition("job", command={"args": ["sh", "-c", script]}, **spec)


# -- retries -------------------------------------------------------------------------------


def test_a_failing_run_is_retried_as_attempts_of_the_same_run() -> None:
    store = MemoryRunStore()
    flaky = job(
        'echo "attempt $CRONTASK_ATTEMPT"; exit 1', retry={"limit": 2, "backoffSeconds": 0.05}
    )

    async def body(d: Dispatcher) -> None:
        d.fire(flaky, T0)

    scenario(store, body)
    attempts = store.attempts(run_id("default/job", T0))
    assert [(a.attempt, a.trigger, a.status) for a in attempts] == [
        (1, Trigger.SCHEDULE, RunStatus.FAILED),
        (2, Trigger.RETRY, RunStatus.FAILED),
        (3, Trigger.RETRY, RunStatus.FAILED),
    ]
    assert [a.output for a in attempts] == ["attempt 1\n", "attempt 2\n", "attempt 3\n"]
    assert {a.id for a in attempts} == {run_id("default/job", T0)}


def test_retries_stop_at_the_first_success(tmp_path: Path) -> None:
    store = MemoryRunStore()
    marker = tmp_path / "seen"
    # Fails once, then succeeds.
    second_time_lucky = job(
        f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 7",
        retry={"limit": 5, "backoffSeconds": 0},
    )

    async def body(d: Dispatcher) -> None:
        d.fire(second_time_lucky, T0)

    scenario(store, body)
    attempts = store.attempts(run_id("default/job", T0))
    assert [(a.attempt, a.status, a.exit_code) for a in attempts] == [
        (1, RunStatus.FAILED, 7),
        (2, RunStatus.SUCCEEDED, 0),
    ]


def test_a_run_waiting_for_its_retry_still_holds_the_slot_under_forbid() -> None:
    store = MemoryRunStore()
    failing = job("exit 1", retry={"limit": 1, "backoffSeconds": 30})

    async def body(d: Dispatcher) -> None:
        d.fire(failing, T0)
        # Let the first attempt fail; its retry now waits 30 s.
        while not (r := store.get(run_id("default/job", T0))) or r.status is RunStatus.RUNNING:
            await asyncio.sleep(0.01)
        next_slot = d.fire(failing, T0 + timedelta(minutes=1))
        assert (next_slot.status, next_slot.reason) == (RunStatus.SKIPPED, "ConcurrencyForbid")
        # Replace-like stop of the waiting run: no further attempt runs, and the abandoned
        # one says why.
        d.fire(job("true", concurrencyPolicy="Replace"), T0 + timedelta(minutes=2))

    scenario(store, body)
    attempts = store.attempts(run_id("default/job", T0))
    assert [(a.attempt, a.status, a.reason, a.started_at) for a in attempts] == [
        (1, RunStatus.FAILED, "NonZeroExit", T0),
        (2, RunStatus.SKIPPED, "Replaced", None),
    ]
    third = store.get(run_id("default/job", T0 + timedelta(minutes=2)))
    assert third is not None
    assert third.status is RunStatus.SUCCEEDED


# -- catch-up after downtime ---------------------------------------------------------------


def test_only_the_latest_missed_slot_runs_and_the_rest_are_counted() -> None:
    store = MemoryRunStore()
    hourly = job("true", schedule="0 * * * *")
    now = T0 + timedelta(hours=5, minutes=10)  # down from 12:00 to 17:10

    async def body(d: Dispatcher) -> None:
        d.catch_up(hourly, anchor=T0, until=now)

    scenario(store, body, now=now)
    got = [(r.scheduled_at.hour, r.trigger, r.status, r.reason) for r in history(store)]
    assert got == [
        (16, Trigger.SCHEDULE, RunStatus.SKIPPED, "Superseded"),
        (17, Trigger.CATCHUP, RunStatus.SUCCEEDED, None),
    ]
    skipped = history(store)[0]
    assert skipped.message is not None
    assert skipped.message.startswith("4 slots after 2026-11-26T12:00:00Z")


def test_a_year_missed_at_one_second_is_one_skip_saying_more_than_it_counted() -> None:
    store = MemoryRunStore()
    every_second = job("true", schedule="* * * * * *")
    now = T0 + timedelta(days=365)

    async def body(d: Dispatcher) -> None:
        d.catch_up(every_second, anchor=T0, until=now)

    scenario(store, body, now=now)
    skipped, ran = history(store)
    assert (skipped.scheduled_at, skipped.reason) == (now - timedelta(seconds=1), "Superseded")
    assert (skipped.message or "").startswith(
        f"more than {COUNTED} slots after 2026-11-26T12:00:00Z and before "
    )
    assert (ran.scheduled_at, ran.trigger, ran.status) == (
        now,
        Trigger.CATCHUP,
        RunStatus.SUCCEEDED,
    )


def test_a_missed_slot_outside_the_deadline_is_recorded_not_run() -> None:
    store = MemoryRunStore()
    hourly = job("true", schedule="0 * * * *", startingDeadlineSeconds=300)
    now = T0 + timedelta(hours=1, minutes=10)  # the 13:00 slot is 10 minutes late

    async def body(d: Dispatcher) -> None:
        d.catch_up(hourly, anchor=T0, until=now)

    scenario(store, body, now=now)
    assert [(r.status, r.reason, r.trigger) for r in history(store)] == [
        (RunStatus.SKIPPED, "MissedDeadline", Trigger.CATCHUP)
    ]


def test_no_catch_up_without_an_earlier_slot_or_when_suspended() -> None:
    store = MemoryRunStore()
    now = T0 + timedelta(hours=3)

    async def body(d: Dispatcher) -> None:
        d.catch_up(job("true", schedule="0 * * * *"), anchor=None, until=now)
        d.catch_up(job("true", schedule="0 * * * *", suspend=True), anchor=T0, until=now)

    scenario(store, body, now=now)
    assert history(store) == []


# -- slots skipped while the loop was busy ---------------------------------------------------


def test_slots_jumped_over_by_a_late_hand_off_are_recorded() -> None:
    store = MemoryRunStore()
    every_minute = job("true", schedule="* * * * *", concurrencyPolicy="Allow")
    late = T0 + timedelta(minutes=4)

    async def body(d: Dispatcher) -> None:
        d.track("default/job", T0 - timedelta(seconds=30))
        d.fire(every_minute, T0)
        d.fire(every_minute, late)  # the loop was blocked: 12:01-12:03 never handed over

    scenario(store, body, now=late)
    got = [(r.scheduled_at.minute, r.status, r.reason) for r in history(store)]
    assert got == [
        (0, RunStatus.SUCCEEDED, None),
        (3, RunStatus.SKIPPED, "Superseded"),
        (4, RunStatus.SUCCEEDED, None),
    ]
    assert "3 slots after 2026-11-26T12:00:00Z" in (history(store)[1].message or "")
