"""Schedules that match in few years: the years between are passed over, not searched.

"0 0 * 2 4#5" (a fifth Thursday in February) matches in one year of 28. Finding a zone's UTC
offset changes costs about a millisecond a year, and searching the 26 years before 2052 in each
of 800 zones held the event loop for 20 s. A year in which no local day can match has no
changes worth finding; what comes out must be what searching every year gives.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reconciler.core.schedule import CronSchedule, parse_schedule
from reconciler.core.schedule import zones as zone_module
from reconciler.core.schedule.cron import HORIZON_YEARS


class EveryYearSearched(CronSchedule):
    """The same schedule, searching the offset changes of every year (the reference)."""

    __slots__ = ()

    def _may_fire_in(self, year: int) -> bool:
        return True


def searched(schedule: CronSchedule) -> CronSchedule:
    return EveryYearSearched(schedule.expression, schedule.zone, schedule.spec, schedule.offset)


def cron(expression: str, zone: str) -> CronSchedule:
    schedule = parse_schedule(expression, zone)
    assert isinstance(schedule, CronSchedule)
    return schedule


def test_the_years_before_a_rare_match_are_not_searched() -> None:
    schedule = cron("0 0 * 2 4#5", "America/Nuuk")
    zone_module.year_transitions.cache_clear()
    after = datetime(2026, 7, 1, tzinfo=UTC)
    assert schedule.next_after(after) == datetime(2052, 2, 29, tzinfo=ZoneInfo("America/Nuuk"))
    # 2052 alone (2051 too, were its last change within two days of New Year): not 2026-2051.
    assert zone_module.year_transitions.cache_info().misses == 1
    zone_module.year_transitions.cache_clear()
    assert searched(schedule).next_after(after) == schedule.next_after(after)
    assert zone_module.year_transitions.cache_info().misses >= 2052 - 2026


def test_decades_without_a_match_are_passed_over_up_to_the_end_of_the_calendar() -> None:
    # A fifth Monday in February (a 29th that is a Monday) is in 2044, then 2072; the last one
    # before datetime's year 9999 is in 9988, so from 9989 the search ends empty.
    schedule = cron("0 0 * 2 1#5", "Europe/Berlin")
    zone_module.year_transitions.cache_clear()
    assert schedule.next_after(datetime(2045, 1, 1, tzinfo=UTC)) == datetime(
        2072, 2, 29, tzinfo=ZoneInfo("Europe/Berlin")
    )
    assert schedule.next_after(datetime(9989, 1, 1, tzinfo=UTC)) is None
    assert zone_module.year_transitions.cache_info().misses == 1  # 2072
    assert HORIZON_YEARS > 2072 - 2045


# Expressions matching near New Year (where the years passed over meet the searched ones) and
# rarely, in zones whose offsets changed at or across New Year, or by a day (Apia, 2011).
EXPRESSIONS = [
    "0 0 * 2 4#5",
    "30 2 29 2 *",
    "0 0 1 1 *",
    "30 23 31 12 *",
    "0 0 1 1 1",
    "* * 31 12 *",
    "*/7 * 1 1 *",
    "59 23 31 12 5",
    "0 0 30,31 12 *",
    "0 0 2 1 *",
    "30 1 1W 1 *",
    "0 2 LW 12 *",
    "0 0 * 1 0#1",
    "30 2 * 3 0L",
    "0 12 29 2 ?",
]
ZONES = [
    "Europe/Berlin",
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "America/Havana",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Africa/Casablanca",
    "Asia/Kolkata",
    "America/St_Johns",
    "Antarctica/Troll",
    "Etc/GMT-14",
    "Etc/GMT+12",
    "Europe/Moscow",
    "Asia/Manila",
]


@pytest.mark.parametrize("zone", ZONES)
def test_the_same_fires_as_searching_every_year(zone: str) -> None:
    rnd = random.Random(zone)  # noqa: S311 - the same cases on every run, not a secret
    for expression in EXPRESSIONS:
        schedule = cron(expression, zone)
        reference = searched(schedule)
        for _ in range(6):
            # Mostly within days of a New Year, from 1890 (local mean time) to 2110.
            year = rnd.randint(1890, 2110)
            after = datetime(year, 1, 1, tzinfo=UTC) + timedelta(
                seconds=rnd.randint(-4 * 86_400, 4 * 86_400)
                if rnd.random() < 0.7
                else rnd.randint(0, 365 * 86_400)
            )
            assert _instants(schedule.fire_times(after, 5)) == _instants(
                reference.fire_times(after, 5)
            ), (expression, after)
            until = after + timedelta(days=rnd.choice([2, 40, 800]))
            assert _instants(schedule.latest_two(after, until)) == _instants(
                reference.latest_two(after, until)
            ), (expression, after, until)


def _instants(times: object) -> list[int | None]:
    assert isinstance(times, list | tuple)
    return [None if t is None else int(t.timestamp()) for t in times]
