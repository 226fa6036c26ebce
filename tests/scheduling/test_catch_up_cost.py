"""After a freeze (host suspended, VM paused, SIGSTOP) or a forward clock step, the adapter
hands over the latest due slot at the cost of the slots near now, not of every slot missed.

The scheduler is turned by hand on a loop that never runs, at an instant a test sets: the
work is counted (slots the schedule steps through), never timed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import reconciler.scheduling.apscheduler as aps
from reconciler.core.desired import Definition
from reconciler.core.plan import Operation, Step
from reconciler.core.schedule import Schedule
from reconciler.scheduling import base
from tests.helpers import definition

KEY = "default/tick"


class _Counted(Schedule):
    """A schedule that counts the fire instants it steps through."""

    def __init__(self, inner: Schedule) -> None:
        super().__init__(inner.expression, inner.zone, inner.offset)
        self.inner = inner
        self.steps = 0

    def _fire_seconds(self, first: int) -> Iterator[int]:
        for u in self.inner._fire_seconds(first):
            self.steps += 1
            yield u

    def describe(self) -> str:
        return self.inner.describe()

    def with_offset(self, seconds: int) -> Schedule:
        return _Counted(self.inner.with_offset(seconds))


class _Clock(datetime):
    """The adapter's ``datetime``, whose ``now()`` is the instant a test sets."""

    at = datetime(2026, 1, 1, tzinfo=UTC)

    @classmethod
    def now(cls, tz: object = None) -> _Clock:
        return cls.fromtimestamp(cls.at.timestamp(), UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> type[_Clock]:
    monkeypatch.setattr(aps, "datetime", _Clock)
    return _Clock


def _frozen(
    monkeypatch: pytest.MonkeyPatch, clock: type[_Clock], schedule: str, zone: str, gap: timedelta
) -> tuple[list[datetime], _Counted, datetime, datetime | None]:
    """A job added at ``clock.at`` whose process was frozen for ``gap``: the slots handed over
    when it thaws, its schedule, its next run time before it thawed, and after."""
    counted: list[_Counted] = []

    def schedule_of(d: Definition) -> Schedule:
        counted.append(_Counted(base.schedule_of(d)))
        return counted[-1]

    monkeypatch.setattr(aps, "schedule_of", schedule_of)
    # A cache of the slot after a slot: it would answer some steps without the schedule.
    monkeypatch.setattr(aps, "_shared_next", {})
    handed: list[datetime] = []
    loop = asyncio.new_event_loop()
    try:
        scheduler = aps.ApsScheduler(lambda key, at: handed.append(at))
        # The loop never runs: its wake-ups wait there, and the test turns the scheduler.
        scheduler._aps._eventloop = loop
        d = definition("tick", schedule=schedule, timeZone=zone)
        scheduler.apply(Step(Operation.ADD, d.key, d, None))
        scheduler.start()
        job = scheduler._aps.get_job(aps.JOB_PREFIX + KEY)
        # APScheduler worked the first slot out on the real clock: start from a known one.
        zoned = counted[0].next_after(clock.at)
        assert zoned is not None
        first = zoned.astimezone(UTC)  # in UTC: adding the gap to a wall time would not do
        job._modify(next_run_time=first)
        scheduler._store.update_job(job)
        clock.at = first + gap
        counted[0].steps = 0
        scheduler._aps._process_jobs()
        return handed, counted[0], first, scheduler.next_fire_time(KEY)
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("schedule", "zone"),
    [("* * * * * *", "UTC"), ("* * * * * *", "Europe/Berlin"), ("@every 1s", "UTC")],
)
def test_thawing_costs_the_same_whatever_the_gap(
    monkeypatch: pytest.MonkeyPatch, clock: type[_Clock], schedule: str, zone: str
) -> None:
    """A per-second task frozen an hour or ten hours: the same steps (APScheduler's own
    coalescing walked all 3 600 or 36 000 slots, one trigger call each, on the event loop)."""
    steps: list[int] = []
    for gap in (timedelta(hours=1, milliseconds=500), timedelta(hours=10, milliseconds=500)):
        clock.at = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # across Berlin's spring forward
        handed, counted, first, _ = _frozen(monkeypatch, clock, schedule, zone, gap)
        # One hand-off: the latest due slot, the whole second of the instant it thawed.
        assert handed == [(first + gap - timedelta(milliseconds=500)).astimezone(UTC)]
        steps.append(counted.steps)
    assert steps[0] == steps[1]
    assert steps[0] < 200


@pytest.mark.parametrize(
    ("schedule", "zone", "gap"),
    [
        ("*/7 * * * * *", "UTC", timedelta(minutes=3, seconds=2)),
        ("30 2 * * *", "Europe/Berlin", timedelta(days=40)),  # a day without 02:30 among them
        ("0 1 * * *", "America/New_York", timedelta(days=3, hours=5)),
        ("@every 45s", "UTC", timedelta(seconds=44)),  # no slot after its next run time
        ("@every 45s", "UTC", timedelta(seconds=45)),
        ("@every 45s", "UTC", timedelta(milliseconds=-20)),  # not due, but within the lead
        ("0 0 29 2 *", "UTC", timedelta(days=7 * 365)),
        ("0 9 * * MON-FRI", "Asia/Tokyo", timedelta(hours=1)),
    ],
)
def test_the_slot_handed_over_is_the_latest_due(
    monkeypatch: pytest.MonkeyPatch,
    clock: type[_Clock],
    schedule: str,
    zone: str,
    gap: timedelta,
) -> None:
    """The slot APScheduler's walk over every missed slot chose, and the job's next slot
    after it: the dispatcher counts the slots in between from that slot."""
    clock.at = datetime(2026, 10, 20, 12, 0, 0, 250_000, tzinfo=UTC)
    handed, counted, first, following = _frozen(monkeypatch, clock, schedule, zone, gap)
    now = first + gap
    _, latest = counted.inner.count_between(first, now)
    expected = first if latest is None else latest
    assert handed == [expected.astimezone(UTC)]
    after = counted.inner.next_after(expected)
    assert after is not None
    assert following == after.astimezone(UTC)
