"""``wall_clock.listed_after``: where a task's next slots are listed from. After the wall clock
went back, from the slot its job waits for (no slot runs before it); but a slot within
``AHEAD_MAX`` of now may have been handed over ahead of its instant, its job then waiting for
the next one: that slot has not run yet, and is listed (it was left out for up to a second
before each slot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.core.timing import AHEAD_MAX
from reconciler.scheduling.base import schedule_of
from reconciler.scheduling.wall_clock import listed_after
from tests.helpers import definition

EVERY_5S = schedule_of(definition("a", schedule="*/5 * * * * *"))
SLOT = datetime(2027, 1, 1, 12, 0, 15, tzinfo=UTC)


def test_a_slot_handed_over_ahead_is_still_listed() -> None:
    now = SLOT - timedelta(seconds=min(0.2, AHEAD_MAX / 2))
    start = listed_after(EVERY_5S, now, waited=SLOT + timedelta(seconds=5))
    assert EVERY_5S.fire_times(start, 1) == [SLOT]


def test_after_a_step_back_the_slot_waited_for_comes_first() -> None:
    now = SLOT - timedelta(hours=1, seconds=2.5)  # no slot within AHEAD_MAX
    assert EVERY_5S.fire_times(listed_after(EVERY_5S, now, waited=SLOT), 2) == [
        SLOT,
        SLOT + timedelta(seconds=5),
    ]


def test_with_nothing_waited_for_the_slots_start_now() -> None:
    now = SLOT - timedelta(seconds=2.5)
    assert listed_after(EVERY_5S, now, waited=None) == now


def test_a_slot_near_now_but_before_the_one_waited_for_is_not_listed() -> None:
    """After a step back a slot within AHEAD_MAX of now was not handed over (the job waits for
    a later one): it does not run. An every-second task always has one that near."""
    every_second = schedule_of(definition("a", schedule="* * * * * *"))
    now = SLOT - timedelta(hours=1, seconds=0.5)
    assert every_second.fire_times(listed_after(every_second, now, waited=SLOT), 1) == [SLOT]
    every_minute = schedule_of(definition("a", schedule="* * * * *"))
    waited = datetime(2027, 1, 1, 13, 0, tzinfo=UTC)
    now = datetime(2027, 1, 1, 12, 0, tzinfo=UTC) - timedelta(seconds=0.5)
    assert every_minute.fire_times(listed_after(every_minute, now, waited), 1) == [waited]
