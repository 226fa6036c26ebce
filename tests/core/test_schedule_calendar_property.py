"""The day fields over decades, in the 16 zones of the DST property tests, against a reference.

The reference walks every local date of the window, asks :meth:`Days.selects` (the L, W and #
items by their definitions) and turns the chosen dates' wall times into instants by the DST
rule of a fixed hour: a wall time that exists once is that instant, a repeated one its first
occurrence, a skipped one the instant of the jump. Windows run 41 to 90 years from a year
between 1900 and 2300, so every month shape (length and weekday of the 1st) comes up, the rare
ones (a Sunday February 29, 40 years apart across 2100) included, and so do the whole days
that Pacific/Apia and Pacific/Kiritimati skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reconciler.core.schedule import ScheduleError, parse_schedule
from tests.core.test_schedule_property import (
    TRANSITIONS,
    Days,
    day_fields,
    field,
    month_dates,
)

ZONES = sorted({zone for zone, _ in TRANSITIONS})


def fixed_instant(wall: datetime, zone: ZoneInfo) -> int:
    """The instant a fixed-hour slot at local ``wall`` (naive) fires, by the DST rule."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    early, late = sorted((int(first.timestamp()), int(second.timestamp())))
    if early == late:
        return early
    first_offset, second_offset = first.utcoffset(), second.utcoffset()
    assert first_offset is not None
    assert second_offset is not None
    if first_offset > second_offset:
        return early  # repeated: the first occurrence
    # Skipped: the jump is the first instant of (early, late] with the offset after it.
    while late - early > 1:
        middle = (early + late) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == second_offset:
            late = middle
        else:
            early = middle
    return late


def reference(
    days: Days, months: frozenset[int], at: time, zone: ZoneInfo, first_year: int, last_year: int
) -> list[int]:
    instants = {
        fixed_instant(datetime.combine(day, at), zone)
        for year in range(first_year, last_year + 1)
        for month in sorted(months)
        for day in month_dates(year, month)
        if days.selects(day)
    }
    return sorted(instants)  # a gap's slot and the slot at its jump are one instant


# No shrinking: an example spans decades, and shrinking a failure would take minutes (the
# failing example is printed as found).
@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=(Phase.explicit, Phase.generate),
)
@given(
    days=day_fields(),
    months=field(1, 12, star_bias=True),
    zone_name=st.sampled_from(ZONES),
    start=st.integers(1900, 2300),
    years=st.integers(41, 90),
    at=st.sampled_from([time(0, 0), time(2, 30), time(12, 0), time(23, 59, 30)]),
)
@pytest.mark.slow
def test_days_over_decades_match_reference(
    days: Days,
    months: tuple[str, frozenset[int]],
    zone_name: str,
    start: int,
    years: int,
    at: time,
) -> None:
    month_text, month_values = months
    time_text = f"{at.minute} {at.hour}"
    if at.second:
        time_text = f"{at.second} {time_text}"
    expression = f"{time_text} {days.dom_text} {month_text} {days.dow_text}"
    try:
        schedule = parse_schedule(expression, zone_name)
    except ScheduleError as error:
        message = str(error)
    else:
        message = ""
    if message:
        assert message.startswith("never fires"), message
        assert not any(
            days.selects(day)
            for year in range(2000, 2400)
            for month in sorted(month_values)
            for day in month_dates(year, month)
        ), expression
        return
    zone = schedule.zone
    # The window is whole UTC days away from the reference's first and last local dates, so
    # that no slot near its edges can be missed or added by a zone's offset.
    after = datetime(start, 1, 3, tzinfo=UTC)
    until = datetime(start + years, 12, 29, tzinfo=UTC)
    low, high = int(after.timestamp()), int(until.timestamp())
    expected = [
        u for u in reference(days, month_values, at, zone, start, start + years) if low < u <= high
    ]
    # Accepted means it fires, and no two fires of one shape are more than 40 years apart.
    assert expected, expression
    got = schedule.fire_times(after, len(expected) + 1)
    assert [int(fire.timestamp()) for fire in got[: len(expected)]] == expected, expression
    assert len(got) == len(expected) + 1
    assert got[-1].timestamp() > high
    assert schedule.count_between(after, until)[0] == len(expected)


# Every L, W and # item on its own. 2001-2028 holds every month shape: each month starts on
# each weekday, and the seven leap Februaries start on seven different weekdays.
SINGLE_ITEMS = [
    ("L", "*"),
    *((f"L-{n}", "*") for n in range(31)),
    *((f"{n}W", "*") for n in range(1, 32)),
    ("LW", "*"),
    *(("*", f"{d}L") for d in range(8)),
    *(("*", f"{d}#{n}") for d in range(8) for n in range(1, 6)),
]


def single_item_days(dom_text: str, dow_text: str) -> Days:
    """The reference's reading of one item, built by hand (not by the generator)."""
    if dom_text == "*":
        weekday, _, nth = dow_text.partition("#")
        number = int(weekday.rstrip("L")) % 7
        return Days(
            dom_text="*",
            dow_text=dow_text,
            days=frozenset(range(1, 32)),
            weekdays=frozenset(),
            dow_last=frozenset({number}) if dow_text.endswith("L") else frozenset(),
            dow_nth=frozenset({(number, int(nth))}) if nth else frozenset(),
        )
    return Days(
        dom_text=dom_text,
        dow_text="*",
        days=frozenset(),
        weekdays=frozenset(range(7)),
        dom_last=frozenset({0 if dom_text == "L" else int(dom_text[2:])})
        if dom_text.startswith("L") and dom_text != "LW"
        else frozenset(),
        dom_nearest=frozenset({int(dom_text[:-1])}) if dom_text[0].isdigit() else frozenset(),
        dom_last_weekday=dom_text == "LW",
    )


@pytest.mark.parametrize(("dom_text", "dow_text"), SINGLE_ITEMS)
def test_every_single_item_over_a_28_year_cycle(dom_text: str, dow_text: str) -> None:
    days = single_item_days(dom_text, dow_text)
    expected = [
        day
        for year in range(2001, 2029)
        for month in range(1, 13)
        for day in month_dates(year, month)
        if days.selects(day)
    ]
    schedule = parse_schedule(f"0 12 {dom_text} * {dow_text}")
    fires = schedule.fire_times(datetime(2000, 12, 31, 12, tzinfo=UTC), len(expected) + 1)
    assert [fire.date() for fire in fires[:-1]] == expected
    assert fires[-1].year == 2029


def test_reference_applies_the_dst_rule() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 02:30 on 2026-03-29 does not exist: the jump at 01:00Z; on 2026-10-25 it happens twice.
    assert fixed_instant(datetime(2026, 3, 29, 2, 30), berlin) == int(
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()
    )
    assert fixed_instant(datetime(2026, 10, 25, 2, 30), berlin) == int(
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp()
    )
    apia = ZoneInfo("Pacific/Apia")
    assert fixed_instant(datetime(2011, 12, 30, 12, 0), apia) == int(
        datetime(2011, 12, 30, 10, 0, tzinfo=UTC).timestamp()
    )


def test_the_sixteen_zones() -> None:
    assert len(ZONES) == 16
