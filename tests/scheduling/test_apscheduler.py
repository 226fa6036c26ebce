"""The APScheduler adapter on a real event loop: it fires at the schedule's slots, owns only
its own entries, and leaves no APScheduler default in charge of late or overlapping slots."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.memory import MemoryJobStore

from reconciler.core.desired import Definition
from reconciler.core.plan import Operation, Step
from reconciler.core.timing import AHEAD_MAX
from reconciler.scheduling.apscheduler import (
    AHEAD_BASE,
    AHEAD_PER_RUN,
    DUE_PER_WAKEUP,
    JOB_PREFIX,
    ApsScheduler,
    _ScheduleTrigger,
    _StartUpJobStore,
)
from reconciler.scheduling.base import schedule_of
from tests.helpers import definition

EVERY_SECOND = "* * * * * *"


def add(d: Definition) -> Step:
    return Step(Operation.ADD, d.key, d, None)


def remove(d: Definition) -> Step:
    return Step(Operation.REMOVE, d.key, None, d)


def with_scheduler(
    scenario: Callable[[ApsScheduler, list[tuple[str, datetime]], asyncio.Event], Awaitable[None]],
) -> None:
    async def main() -> None:
        fired: list[tuple[str, datetime]] = []
        event = asyncio.Event()

        def on_fire(key: str, at: datetime) -> None:
            fired.append((key, at))
            event.set()

        scheduler = ApsScheduler(on_fire)
        scheduler.start()
        try:
            await scenario(scheduler, fired, event)
        finally:
            scheduler.shutdown()

    asyncio.run(main())


async def next_fire(event: asyncio.Event, timeout: float = 5.0) -> None:
    await asyncio.wait_for(event.wait(), timeout)
    event.clear()


def test_fires_each_slot_with_its_scheduled_time() -> None:
    async def scenario(
        scheduler: ApsScheduler, fired: list[tuple[str, datetime]], event: asyncio.Event
    ) -> None:
        scheduler.apply(add(definition("tick", schedule=EVERY_SECOND)))
        await next_fire(event)
        await next_fire(event)
        (k1, t1), (k2, t2) = fired[:2]
        assert k1 == k2 == "default/tick"
        assert t1.tzinfo is UTC
        assert t1.microsecond == 0
        assert (t2 - t1).total_seconds() == 1
        assert t1 <= datetime.now(UTC)

    with_scheduler(scenario)


def test_jobs_carry_explicit_misfire_and_concurrency_settings() -> None:
    async def scenario(
        scheduler: ApsScheduler, fired: list[tuple[str, datetime]], event: asyncio.Event
    ) -> None:
        scheduler.apply(add(definition("tick", schedule="@every 1h")))
        job = scheduler._aps.get_job(JOB_PREFIX + "default/tick")
        assert job.misfire_grace_time is None  # crontask, not APScheduler, decides on late slots
        assert job.coalesce is True
        assert job.max_instances == 1  # never reached: the hand-off returns at once

    with_scheduler(scenario)


def test_suspended_task_is_kept_but_never_fires() -> None:
    async def scenario(
        scheduler: ApsScheduler, fired: list[tuple[str, datetime]], event: asyncio.Event
    ) -> None:
        suspended = definition("sleepy", schedule=EVERY_SECOND, suspend=True)
        scheduler.apply(add(suspended))
        scheduler.apply(add(definition("clock", schedule=EVERY_SECOND)))
        for _ in range(2):
            await next_fire(event)
        assert {k for k, _ in fired} == {"default/clock"}
        assert scheduler.next_fire_time("default/sleepy") is None
        assert "default/sleepy" in scheduler.owned()

    with_scheduler(scenario)


def test_remove_is_idempotent_and_touches_only_owned_entries() -> None:
    async def scenario(
        scheduler: ApsScheduler, fired: list[tuple[str, datetime]], event: asyncio.Event
    ) -> None:
        foreign = scheduler._aps.add_job(print, "interval", hours=1, id="someone-else")
        tick = definition("tick", schedule="@every 1h")
        scheduler.apply(add(tick))
        assert set(scheduler.owned()) == {"default/tick"}
        scheduler.apply(remove(tick))
        scheduler.apply(remove(tick))
        assert scheduler.owned() == {}
        assert scheduler.next_fire_time("default/tick") is None
        assert scheduler._aps.get_job("someone-else") is foreign

    with_scheduler(scenario)


def test_update_replaces_the_schedule() -> None:
    async def scenario(
        scheduler: ApsScheduler, fired: list[tuple[str, datetime]], event: asyncio.Event
    ) -> None:
        hourly = definition("job", schedule="0 * * * *")
        scheduler.apply(add(hourly))
        first = scheduler.next_fire_time("default/job")
        assert first is not None
        assert first.minute == 0
        every_second = definition("job", schedule=EVERY_SECOND)
        scheduler.apply(Step(Operation.UPDATE, "default/job", every_second, hourly))
        await next_fire(event)
        assert scheduler.owned()["default/job"] is every_second

    with_scheduler(scenario)


def test_a_blocked_loop_hands_over_the_latest_slot_once() -> None:
    async def scenario(
        scheduler: ApsScheduler, fired: list[tuple[str, datetime]], event: asyncio.Event
    ) -> None:
        scheduler.apply(add(definition("tick", schedule=EVERY_SECOND)))
        await next_fire(event)
        # Block the loop through about three slots, as a long synchronous pass would.
        time.sleep(3.2)
        before = len(fired)
        await next_fire(event)
        late = fired[before:]
        # Coalesced: one hand-off, of the latest due slot; the dispatcher accounts for the rest.
        assert len(late) == 1
        assert (late[0][1] - fired[before - 1][1]).total_seconds() >= 3

    with_scheduler(scenario)


def test_a_change_applied_while_a_slot_is_due_still_hands_that_slot_over() -> None:
    """A pass that keeps the loop past a slot and changes the task in it: the slot that came
    due meanwhile is handed over (to the changed definition), not skipped without a trace."""

    async def scenario(
        scheduler: ApsScheduler, fired: list[tuple[str, datetime]], event: asyncio.Event
    ) -> None:
        before = definition("tick", schedule=EVERY_SECOND)
        scheduler.apply(add(before))
        await next_fire(event)
        time.sleep(1.3)  # the loop is busy past the next slot, as a long pass keeps it
        changed = definition("tick", schedule=EVERY_SECOND, command={"args": ["true", "2"]})
        updated_at = datetime.now(UTC)
        scheduler.apply(Step(Operation.UPDATE, changed.key, changed, before))
        assert scheduler.owned()["default/tick"] is changed
        handed = len(fired)
        await next_fire(event)
        # The slot due before the change, not the changed trigger's first slot after it.
        assert fired[handed][1] <= updated_at

    with_scheduler(scenario)


def test_a_burst_is_handed_over_in_parts_and_the_loop_runs_between_them() -> None:
    """Each wake-up hands over at most DUE_PER_WAKEUP slots; callbacks queued meanwhile (a
    claim's answer, a run about to spawn) run before the next part, and no slot is left out."""
    n = 3 * DUE_PER_WAKEUP + 5

    async def main() -> list[tuple[str, datetime, int]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, datetime, int]] = []
        turn = 0
        marked = False
        complete = asyncio.Event()

        def next_turn() -> None:
            nonlocal turn, marked
            turn, marked = turn + 1, False

        def on_fire(key: str, at: datetime) -> None:
            nonlocal marked
            fired.append((key, at, turn))
            if not marked:  # runs as soon as the loop gets to its queue
                loop.call_soon(next_turn)
                marked = True
            if sum(1 for _, slot, _ in fired if slot == fired[0][1]) == n:
                complete.set()

        scheduler = ApsScheduler(on_fire)
        scheduler.start()
        try:
            for i in range(n):
                scheduler.apply(add(definition(f"t{i:03d}", schedule=EVERY_SECOND)))
            await asyncio.wait_for(complete.wait(), 5.0)
        finally:
            scheduler.shutdown()
        return fired

    fired = asyncio.run(main())
    first_slot = fired[0][1]
    burst = [(key, turn) for key, at, turn in fired if at == first_slot]
    assert sorted(key for key, _ in burst) == [f"default/t{i:03d}" for i in range(n)]
    per_turn = Counter(turn for _, turn in burst)
    assert max(per_turn.values()) == DUE_PER_WAKEUP
    assert len(per_turn) == -(-n // DUE_PER_WAKEUP)
    # In the store's order (by id within a slot): the first part holds the first keys.
    assert [key for key, _ in burst] == sorted(key for key, _ in burst)


def test_the_trigger_answers_a_repeated_question_the_same_and_a_new_one_afresh() -> None:
    # APScheduler asks twice for the slot after the one it fires; the trigger keeps its last
    # answer. Any other question, in any order, must still get the schedule's own answer.
    schedule = schedule_of(definition("t", schedule="*/7 * * * *"))
    trigger = _ScheduleTrigger(schedule)
    now = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    slots = [datetime(2026, 3, 29, 0, m, tzinfo=UTC) for m in (0, 7, 7, 14, 7, 3, 3, 0)]
    for previous in slots:
        expected = schedule.next_after(previous)
        assert expected is not None
        assert trigger.get_next_fire_time(previous, now) == expected.astimezone(UTC)
    # The first question (no previous slot) counts a slot at exactly `now`, and is not kept.
    assert trigger.get_next_fire_time(None, now) == now
    assert trigger.get_next_fire_time(None, now + timedelta(minutes=1)) == now + timedelta(
        minutes=7
    )


def test_the_start_up_store_keeps_apschedulers_order_however_jobs_come() -> None:
    """Jobs added in a batch are sorted once; before, during and after a batch, every read,
    update and removal sees what APScheduler's own store holds for the same operations (the
    due jobs: their first part)."""
    rng = random.Random(3)  # noqa: S311 - a reproducible draw, not a secret
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def job(i: int) -> SimpleNamespace:
        at = None if i % 17 == 0 else start + timedelta(seconds=rng.randrange(40))
        return SimpleNamespace(id=f"j{rng.randrange(10**6):06d}-{i}", next_run_time=at)

    ours, theirs = _StartUpJobStore(), MemoryJobStore()

    def both(operation: str, *args: object) -> None:
        getattr(ours, operation)(*args)
        getattr(theirs, operation)(*args)

    def same() -> None:
        assert [j.id for j in ours.get_all_jobs()] == [j.id for j in theirs.get_all_jobs()]
        for seconds in (0, 20):  # a few due jobs, then more than one part's worth
            now = start + timedelta(seconds=seconds)
            due = [j.id for j in theirs.get_due_jobs(now)]
            assert [j.id for j in ours.get_due_jobs(now)] == due[:DUE_PER_WAKEUP]
        assert ours.get_next_run_time() == theirs.get_next_run_time()

    jobs = [job(i) for i in range(400)]
    for j in jobs[:50]:
        both("add_job", j)
    with ours.batch():
        for j in jobs[50:300]:
            both("add_job", j)
        with pytest.raises(ConflictingIdError):
            ours.add_job(jobs[60])
        same()  # a read in the middle of a batch
        for j in jobs[300:350]:
            both("add_job", j)
        moved = SimpleNamespace(id=jobs[310].id, next_run_time=start)
        both("update_job", moved)
        both("remove_job", jobs[320].id)
    same()
    for j in jobs[350:]:
        both("add_job", j)
    for j in rng.sample(jobs[:300], 40):
        both("remove_job", j.id)
    same()
    assert len(ours.get_all_jobs()) == 400 - 41


def test_the_lead_grows_with_the_jobs_due_together_and_holds_while_they_go() -> None:
    """A slot is handed over AHEAD_BASE before it, plus AHEAD_PER_RUN per job due with it, at
    most AHEAD_MAX; worked out once per instant, so handing the jobs over does not shrink it
    (which would pace the hand-over instead of letting it run ahead)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    store = _StartUpJobStore()
    assert store.ahead() == AHEAD_BASE  # nothing scheduled
    burst = [SimpleNamespace(id=f"b{i:04d}", next_run_time=start) for i in range(200)]
    later = SimpleNamespace(id="later", next_run_time=start + timedelta(seconds=10))
    for job in [*burst, later]:
        store.add_job(job)
    assert store.ahead() == pytest.approx(AHEAD_BASE + 200 * AHEAD_PER_RUN)
    for job in burst[:150]:  # handed over: their next slot is a minute on
        job.next_run_time = start + timedelta(minutes=1)
        store.update_job(job)
    assert store.ahead() == pytest.approx(AHEAD_BASE + 200 * AHEAD_PER_RUN)
    for job in burst[150:]:
        job.next_run_time = start + timedelta(minutes=1)
        store.update_job(job)
    assert store.ahead() == pytest.approx(AHEAD_BASE + AHEAD_PER_RUN)  # "later" alone
    many = _StartUpJobStore()
    for i in range(10_000):
        many.add_job(SimpleNamespace(id=f"m{i:05d}", next_run_time=start))
    assert many.ahead() == AHEAD_MAX


def test_slots_are_handed_over_ahead_of_their_instant_and_no_earlier_than_the_lead() -> None:
    n = 1000
    lead = AHEAD_BASE + n * AHEAD_PER_RUN

    async def main() -> tuple[float, list[tuple[float, datetime]]]:
        slot = datetime.fromtimestamp(float(int(time.time()) + 3), UTC)
        every_day = f"{slot.second} {slot.minute} {slot.hour} * * *"
        tasks = [definition(f"t{i:04d}", schedule=every_day) for i in range(n)]
        fired: list[tuple[float, datetime]] = []
        complete = asyncio.Event()

        def on_fire(key: str, at: datetime) -> None:
            fired.append((time.time(), at))
            if len(fired) == n:
                complete.set()

        scheduler = ApsScheduler(on_fire)
        scheduler.start()
        try:
            for task in tasks:
                scheduler.apply(add(task))
            await asyncio.wait_for(complete.wait(), 10.0)
        finally:
            scheduler.shutdown()
        return slot.timestamp(), fired

    slot, fired = asyncio.run(main())
    assert {at.timestamp() for _, at in fired} == {slot}
    # Not before the lead (a few milliseconds of timer slack), and ahead of the slot.
    assert min(when for when, _ in fired) >= slot - lead - 0.005
    assert min(when for when, _ in fired) < slot - lead / 2


def test_a_callback_that_fails_costs_that_slot_only(caplog: pytest.LogCaptureFixture) -> None:
    """Logged; the job keeps its next slot and the other jobs theirs (the scheduler goes on)."""

    async def main() -> list[tuple[str, datetime]]:
        fired: list[tuple[str, datetime]] = []
        done = asyncio.Event()
        failed = False

        def on_fire(key: str, at: datetime) -> None:
            nonlocal failed
            if key == "default/bad" and not failed:
                failed = True
                raise RuntimeError("a bug in the callback")
            fired.append((key, at))
            if sum(1 for k, _ in fired if k == "default/bad") == 1:
                done.set()

        scheduler = ApsScheduler(on_fire)
        scheduler.start()
        try:
            scheduler.apply(add(definition("bad", schedule=EVERY_SECOND)))
            scheduler.apply(add(definition("good", schedule=EVERY_SECOND)))
            await asyncio.wait_for(done.wait(), 5.0)
        finally:
            scheduler.shutdown()
        return fired

    fired = asyncio.run(main())
    assert "could not hand a slot over" in caplog.text
    bad = [at for key, at in fired if key == "default/bad"]
    good = [at for key, at in fired if key == "default/good"]
    assert len(bad) == 1
    assert good
    assert min(good) < bad[0]  # the good job's slot of the failed second was handed over


def test_a_slot_handed_over_late_is_that_slot_not_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a lead near the interval (a second, for a thousand jobs due together), a slot
    handed over a little late (the loop was busy) is still that slot: coalescing up to the
    lead would hand over the next one and leave this one superseded."""
    monkeypatch.setattr(_StartUpJobStore, "ahead", lambda self: 0.99)

    async def main() -> tuple[datetime, list[datetime]]:
        handed: list[datetime] = []
        scheduler = ApsScheduler(lambda key, at: handed.append(at))
        scheduler.start()
        try:
            scheduler.apply(add(definition("tick", schedule=EVERY_SECOND)))
            await asyncio.sleep(0.1)
            slot = datetime.fromtimestamp(float(int(time.time()) + 3), UTC)
            await asyncio.sleep(slot.timestamp() - 1.2 - time.time())
            time.sleep(
                slot.timestamp() + 0.03 - time.time()
            )  # busy from before the lead to past the slot
            await asyncio.sleep(0.1)
        finally:
            scheduler.shutdown()
        return slot, handed

    slot, handed = asyncio.run(main())
    assert slot in handed
