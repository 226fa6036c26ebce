"""A task changed while its slot is due and not handed over yet (a pass kept the loop past it):
under the same schedule the changed job still owes that slot; under a new schedule (its
expression, time zone or jitter) the old schedule's slot is no slot of it, and the task runs
what a restart would run: the new schedule's latest slot since the last one, as a catch-up.

The real adapter on a fake clock: its own loop never runs, and the test turns it by hand at
the instants it sets, as the wake-up after the pass would (README: a schedule means the same
whether crontask was running or stopped)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import apscheduler.schedulers.base as aps_base
import pytest

import reconciler.scheduling.apscheduler as aps
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import account_for_slots
from reconciler.core.desired import Definition
from reconciler.core.plan import Operation, Step
from reconciler.scheduling.base import schedule_of
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.helpers import definition, local_actions

KEY = "default/tick"
T0 = datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)


class _Clock(datetime):
    """``datetime`` for the adapter and APScheduler, whose ``now()`` is the instant set."""

    at = T0

    @classmethod
    def now(cls, tz: Any = None) -> _Clock:
        return cls.fromtimestamp(cls.at.timestamp(), UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Clock]]:
    monkeypatch.setattr(aps, "datetime", _Clock)
    monkeypatch.setattr(aps_base, "datetime", _Clock)  # a job's first slot is after its now
    _Clock.at = T0
    yield _Clock
    _Clock.at = T0


def at(seconds: float) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


class Rig:
    """The adapter, a dispatcher with real commands and a memory store, on ``clock``."""

    def __init__(self, clock: type[_Clock]) -> None:
        self.clock = clock
        self.store = MemoryRunStore()
        self.dispatcher = Dispatcher(
            self.store, owner="me", clock=lambda: clock.at, actions=local_actions()
        )
        self.scheduler = aps.ApsScheduler(self._fired)
        # The adapter's loop never runs: its wake-ups wait there, and the test turns it.
        self.idle = asyncio.new_event_loop()
        self.scheduler._aps._eventloop = self.idle

    def _fired(self, key: str, slot: datetime) -> None:
        self.dispatcher.fire(self.scheduler.owned()[key], slot)

    async def apply(self, step: Step) -> None:
        """One pass of one step at the clock's instant, as ``Reconciler.apply`` makes it."""
        if step.operation is not Operation.ADD:
            self.dispatcher.before_change(step.key, changed=True)
        self.scheduler.apply(step)
        self.scheduler.start()  # the first pass starts it; later ones change nothing
        account_for_slots([step], self.scheduler, self.dispatcher, self.clock.at)
        await asyncio.sleep(0)  # the loop is free: the adapter's wake-ups resume

    def wake(self, now: datetime) -> None:
        """The adapter wakes at ``now`` and hands over what is due."""
        self.clock.at = now
        self.scheduler._aps._process_jobs()

    async def runs(self) -> list[tuple[datetime, str]]:
        assert await self.dispatcher.drain(10)
        items = self.store.query(RunQuery(task=KEY, limit=100)).items
        return sorted((r.scheduled_at, str(r.trigger)) for r in items)

    def close(self) -> None:
        self.scheduler.shutdown()
        self.idle.close()


def tick(schedule: str, **spec: Any) -> Definition:
    return definition("tick", schedule=schedule, concurrencyPolicy="Allow", **spec)


def test_a_new_schedule_does_not_run_the_old_schedules_due_slot(clock: type[_Clock]) -> None:
    """The reviewer's case: "*/4" ran :04; a pass kept the loop to :08.3, past the slot :08,
    and changed the schedule to "2/4". A restart at :08.3 runs :06 (catch-up) and :10; so does
    the live change, and :08, which is no slot of "2/4", does not run."""

    async def main() -> tuple[list[tuple[datetime, str]], datetime | None]:
        rig = Rig(clock)
        try:
            old, new = tick("*/4 * * * * *"), tick("2/4 * * * * *")
            await rig.apply(Step(Operation.ADD, KEY, old, None))
            rig.wake(at(4))
            clock.at = at(8.3)  # the pass that changes the task ends here
            await rig.apply(Step(Operation.UPDATE, KEY, new, old))
            following = rig.scheduler.next_fire_time(KEY)
            rig.wake(at(8.3))  # the wake-up after the pass
            rig.wake(at(10))
            return await rig.runs(), following
        finally:
            rig.close()

    runs, following = asyncio.run(main())
    assert runs == [(at(4), "schedule"), (at(6), "catchup"), (at(10), "schedule")]
    assert following == at(10)


def test_an_edit_that_keeps_the_schedule_still_owes_the_due_slot(clock: type[_Clock]) -> None:
    """A new command, the same schedule: the slot :08 that came due during the pass is
    handed over to the changed task, once, and the snapshot (nextScheduleTime, the metrics)
    shows it as the next slot meanwhile, not nothing."""

    async def main() -> list[tuple[datetime, str]]:
        rig = Rig(clock)
        try:
            old = tick("*/4 * * * * *")
            new = tick("*/4 * * * * *", command={"args": ["true", "2"]})
            await rig.apply(Step(Operation.ADD, KEY, old, None))
            rig.wake(at(4))
            clock.at = at(8.3)
            await rig.apply(Step(Operation.UPDATE, KEY, new, old))
            assert rig.scheduler.next_fire_time(KEY) == at(8)
            entry = rig.scheduler.snapshot()[KEY]
            assert (entry.definition, entry.next_fire, entry.interval) == (new, at(8), 4.0)
            rig.wake(at(8.3))
            assert rig.scheduler.snapshot()[KEY].next_fire == at(12)
            return await rig.runs()
        finally:
            rig.close()

    assert asyncio.run(main()) == [(at(4), "schedule"), (at(8), "schedule")]


JITTER = 1800  # its offset for KEY is not 0: a new schedule (the test checks it)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"schedule": "0 * * * *"}, {"schedule": "30 * * * *"}),
        ({"schedule": "0 * * * *"}, {"schedule": "0 * * * *", "timeZone": "Asia/Kolkata"}),
        ({"schedule": "0 * * * *"}, {"schedule": "0 * * * *", "jitterSeconds": JITTER}),
    ],
    ids=["expression", "zone", "jitter"],
)
def test_any_new_schedule_starts_at_its_first_slot_after_the_change(
    clock: type[_Clock], before: dict[str, Any], after: dict[str, Any]
) -> None:
    """The hourly slot 01:00 is due when the pass ends at 01:00:00.3: a new expression, time
    zone (+05:30) or jitter starts at its own first slot after that, in the adapter and in
    its snapshot."""
    clock.at = at(3600 - 10)

    async def main() -> None:
        rig = Rig(clock)
        try:
            old, new = definition("tick", **before), definition("tick", **after)
            assert schedule_of(new) != schedule_of(old)
            await rig.apply(Step(Operation.ADD, KEY, old, None))
            assert rig.scheduler.next_fire_time(KEY) == at(3600)
            clock.at = at(3600.3)
            await rig.apply(Step(Operation.UPDATE, KEY, new, old))
            first = schedule_of(new).next_after(clock.at)
            assert first is not None
            assert first > clock.at
            assert rig.scheduler.next_fire_time(KEY) == first
            assert rig.scheduler.snapshot()[KEY].next_fire == first
        finally:
            rig.close()

    asyncio.run(main())
