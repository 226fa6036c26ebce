"""L, W, # and ? in the day fields: what they select, in words, around DST, and what is refused.

Calendar facts used below (2026 unless said otherwise):
  Feb 28 is a Saturday (last day); Mar 29 and Oct 25 are the last Sundays of March and October
  (Europe/Berlin springs forward / falls back on them); May 31 is a Sunday; Aug 1 is a
  Saturday; Nov 1 is a Sunday; Mondays fall five times in March, June, August and November.
  2027-02-28 is a Sunday. 2011-12-30 did not exist in Pacific/Apia (it jumped from UTC-10 to
  UTC+14 at midnight) nor did 1994-12-31 in Pacific/Kiritimati.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.core.model import TaskSpec
from reconciler.core.schedule import CronSchedule, ScheduleError, parse_schedule
from tests.deploy.schema_tools import openapi_validator

ROOT = Path(__file__).resolve().parents[2]


def cron(expression: str, zone: str = "UTC") -> CronSchedule:
    schedule = parse_schedule(expression, zone)
    assert isinstance(schedule, CronSchedule)
    return schedule


# (expression, {spec attribute: value})
SPECS: list[tuple[str, dict[str, object]]] = [
    ("0 0 L * *", {"days": (), "dom_last": (0,), "dom_star": False}),
    ("0 0 l * *", {"dom_last": (0,)}),
    ("0 0 L-3 * *", {"dom_last": (3,)}),
    ("0 0 L-0,L * *", {"dom_last": (0,)}),
    ("0 0 L-30 * *", {"dom_last": (30,)}),
    ("0 0 1,15,L * *", {"days": (1, 15), "dom_last": (0,)}),
    ("0 0 1-3,L-1 * *", {"days": (1, 2, 3), "dom_last": (1,)}),
    ("0 0 15W * *", {"days": (), "dom_nearest": (15,)}),
    ("0 0 1w,31W * *", {"dom_nearest": (1, 31)}),
    ("0 0 LW * *", {"dom_last_weekday": True, "days": ()}),
    ("0 0 lw,L * *", {"dom_last_weekday": True, "dom_last": (0,)}),
    ("0 0 * * 5L", {"weekdays": (), "dow_last": (5,), "dow_star": False}),
    ("0 0 * * FRIL", {"dow_last": (5,)}),
    ("0 0 * * fril", {"dow_last": (5,)}),
    ("0 0 * * 7L", {"dow_last": (0,)}),  # 7 is Sunday, as everywhere in this field
    ("0 0 * * 0L,SUNL", {"dow_last": (0,)}),
    ("0 0 * * 1-4,5L", {"weekdays": (1, 2, 3, 4), "dow_last": (5,)}),
    ("0 0 * * 1#2", {"weekdays": (), "dow_nth": ((1, 2),)}),
    ("0 0 * * MON#2", {"dow_nth": ((1, 2),)}),
    ("0 0 * * 7#1", {"dow_nth": ((0, 1),)}),
    ("0 0 * * sun#5", {"dow_nth": ((0, 5),)}),
    ("0 0 ? * MON#2", {"days": tuple(range(1, 32)), "dom_star": True}),
    ("0 0 1 * ?", {"weekdays": tuple(range(7)), "dow_star": True}),
    ("0 0 12 ? * *", {"has_seconds": True, "hours": (12,), "dom_star": True}),
    ("*/5 * * * * ?", {"seconds": tuple(range(0, 60, 5)), "dow_star": True}),
]


@pytest.mark.parametrize(("expression", "attributes"), SPECS)
def test_spec(expression: str, attributes: dict[str, object]) -> None:
    spec = cron(expression).spec
    assert {name: getattr(spec, name) for name in attributes} == attributes


# (zone, expression, after, expected fire instants as RFC 3339 in the zone)
FIRES = [
    (
        "UTC",
        "0 0 L * *",
        "2026-01-15T00:00:00+00:00",
        ["2026-01-31T00:00:00+00:00", "2026-02-28T00:00:00+00:00", "2026-03-31T00:00:00+00:00"],
    ),
    (  # leap years have a 29th
        "UTC",
        "0 0 L 2 *",
        "2027-03-01T00:00:00+00:00",
        ["2028-02-29T00:00:00+00:00", "2029-02-28T00:00:00+00:00"],
    ),
    (
        "UTC",
        "0 0 L-3 * *",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-28T00:00:00+00:00", "2026-02-25T00:00:00+00:00", "2026-03-28T00:00:00+00:00"],
    ),
    (  # L-30: day 1 of 31-day months only; February and 30-day months have no such day
        "UTC",
        "0 0 L-30 * *",
        "2026-01-02T00:00:00+00:00",
        ["2026-03-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00", "2026-07-01T00:00:00+00:00"],
    ),
    (  # L-28 in February: only a leap year's February 1
        "UTC",
        "0 0 L-28 2 *",
        "2026-01-01T00:00:00+00:00",
        ["2028-02-01T00:00:00+00:00", "2032-02-01T00:00:00+00:00"],
    ),
    (
        "UTC",
        "0 0 1,15,L * *",
        "2026-02-01T00:00:00+00:00",
        ["2026-02-15T00:00:00+00:00", "2026-02-28T00:00:00+00:00", "2026-03-01T00:00:00+00:00"],
    ),
    (  # 1W: Aug 1 is a Saturday, the Friday before is in July, so Monday the 3rd
        "UTC",
        "0 9 1W 8 *",
        "2026-01-01T00:00:00+00:00",
        ["2026-08-03T09:00:00+00:00", "2027-08-02T09:00:00+00:00"],
    ),
    (  # 1W on a Sunday (Nov 1): Monday the 2nd
        "UTC",
        "0 9 1W 11 *",
        "2026-01-01T00:00:00+00:00",
        ["2026-11-02T09:00:00+00:00", "2027-11-01T09:00:00+00:00"],
    ),
    (  # 31W: May 31 is a Sunday, the Monday after is in June, so Friday the 29th; Jan 31
        # 2026 is a Saturday: Friday the 30th; months without a 31st have no such day
        "UTC",
        "0 9 31W * *",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-01-30T09:00:00+00:00",
            "2026-03-31T09:00:00+00:00",
            "2026-05-29T09:00:00+00:00",
            "2026-07-31T09:00:00+00:00",
        ],
    ),
    (  # 15W: Feb 15 2026 is a Sunday (Monday 16th), Mar 15 a Sunday, Aug 15 a Saturday
        "UTC",
        "0 9 15W * *",
        "2026-02-01T00:00:00+00:00",
        ["2026-02-16T09:00:00+00:00", "2026-03-16T09:00:00+00:00", "2026-04-15T09:00:00+00:00"],
    ),
    (  # LW: Feb 28 2026 is a Saturday, Feb 28 2027 a Sunday: Friday both times
        "UTC",
        "0 18 LW 2 *",
        "2026-01-01T00:00:00+00:00",
        ["2026-02-27T18:00:00+00:00", "2027-02-26T18:00:00+00:00", "2028-02-29T18:00:00+00:00"],
    ),
    (
        "UTC",
        "0 0 * * 5L",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00", "2026-03-27T00:00:00+00:00"],
    ),
    (
        "UTC",
        "0 0 * * MON#2",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-12T00:00:00+00:00", "2026-02-09T00:00:00+00:00", "2026-03-09T00:00:00+00:00"],
    ),
    (  # #5 does not occur in months without a fifth Monday
        "UTC",
        "0 0 * * 1#5",
        "2026-01-01T00:00:00+00:00",
        [
            "2026-03-30T00:00:00+00:00",
            "2026-06-29T00:00:00+00:00",
            "2026-08-31T00:00:00+00:00",
            "2026-11-30T00:00:00+00:00",
        ],
    ),
    (  # a fifth Sunday in February is a Sunday Feb 29: 28 years apart, then 40 across 2100
        "UTC",
        "0 0 * 2 0#5",
        "2026-01-01T00:00:00+00:00",
        [
            "2032-02-29T00:00:00+00:00",
            "2060-02-29T00:00:00+00:00",
            "2088-02-29T00:00:00+00:00",
            "2128-02-29T00:00:00+00:00",
        ],
    ),
    (  # both day fields restricted: the last day OR any Friday (Vixie cron)
        "UTC",
        "0 0 L * 5",
        "2026-01-20T00:00:00+00:00",
        ["2026-01-23T00:00:00+00:00", "2026-01-30T00:00:00+00:00", "2026-01-31T00:00:00+00:00"],
    ),
    (  # "*/2" starts with "*": a day must match both (odd days that are the last Friday)
        "UTC",
        "0 0 */2 * 5L",
        "2026-01-01T00:00:00+00:00",
        ["2026-02-27T00:00:00+00:00", "2026-03-27T00:00:00+00:00", "2026-05-29T00:00:00+00:00"],
    ),
    (  # six fields, as Quartz and Spring users write them
        "UTC",
        "0 0 12 ? * MON#2",
        "2026-01-01T00:00:00+00:00",
        ["2026-01-12T12:00:00+00:00", "2026-02-09T12:00:00+00:00"],
    ),
    (
        "UTC",
        "*/20 0 0 L * ?",
        "2026-01-30T12:00:00+00:00",
        ["2026-01-31T00:00:00+00:00", "2026-01-31T00:00:20+00:00", "2026-01-31T00:00:40+00:00"],
    ),
    # --- DST: the hour field decides the rule; L and # only choose the day ---
    (  # the last Sunday of March is the spring-forward night: once, at the jump
        "Europe/Berlin",
        "30 2 * * 0L",
        "2026-02-01T00:00:00+01:00",
        ["2026-02-22T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-04-26T02:30:00+02:00"],
    ),
    (  # ... and of October the fall-back night: once, at the first 02:30
        "Europe/Berlin",
        "30 2 * * SUNL",
        "2026-09-01T00:00:00+02:00",
        ["2026-09-27T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-11-29T02:30:00+01:00"],
    ),
    (  # a wildcard hour follows elapsed time: both 02:30s in October, none in March
        "Europe/Berlin",
        "30 * * 3,10 0L",
        "2026-03-29T01:00:00+01:00",
        ["2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"],
    ),
    (
        "Europe/Berlin",
        "30 * * 3,10 0L",
        "2026-10-25T01:00:00+02:00",
        [
            "2026-10-25T01:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T03:30:00+01:00",
        ],
    ),
    (  # the second Sunday of March is New York's spring-forward night
        "America/New_York",
        "0 2 * * 0#2",
        "2026-02-01T00:00:00-05:00",
        ["2026-02-08T02:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-04-12T02:00:00-04:00"],
    ),
    (  # the last weekday of December 2011 in Apia was Friday the 30th, a day that never
        # happened there: a fixed hour runs at the jump, the first instant of the 31st
        "Pacific/Apia",
        "0 9 LW * *",
        "2011-11-01T00:00:00-10:00",
        ["2011-11-30T09:00:00-10:00", "2011-12-31T00:00:00+14:00", "2012-01-31T09:00:00+14:00"],
    ),
    (  # ... and a wildcard hour does not run on it at all
        "Pacific/Apia",
        "0 * LW 12 *",
        "2011-12-29T22:30:00-10:00",
        ["2012-12-31T00:00:00+14:00", "2012-12-31T01:00:00+14:00"],
    ),
    (  # 00:00 on the skipped 30th runs at the jump, which is also the 31st's 00:00: once
        "Pacific/Apia",
        "0 0 L-1,L 12 *",
        "2011-12-01T00:00:00-10:00",
        ["2011-12-31T00:00:00+14:00", "2012-12-30T00:00:00+14:00"],
    ),
    (  # Kiritimati skipped Saturday 1994-12-31, the last day of that December
        "Pacific/Kiritimati",
        "30 17 L 12 *",
        "1993-01-01T00:00:00-10:00",
        ["1993-12-31T17:30:00-10:00", "1995-01-01T00:00:00+14:00", "1995-12-31T17:30:00+14:00"],
    ),
]


@pytest.mark.parametrize(("zone", "expression", "after", "expected"), FIRES)
def test_fire_times(zone: str, expression: str, after: str, expected: list[str]) -> None:
    schedule = cron(expression, zone)
    fires = schedule.fire_times(datetime.fromisoformat(after), len(expected))
    assert [fire.isoformat() for fire in fires] == expected
    # next_after walks the same instants, and count_between counts them.
    moment = datetime.fromisoformat(after)
    for want in expected:
        following = schedule.next_after(moment)
        assert following is not None
        assert following.isoformat() == want
        moment = following
    count, latest = schedule.count_between(datetime.fromisoformat(after), fires[-1])
    assert (count, latest) == (len(expected), fires[-1])


def test_question_mark_is_a_star() -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    for question, star in [
        ("0 0 ? * 1#2", "0 0 * * 1#2"),
        ("0 0 L * ?", "0 0 L * *"),
        ("0 0 ? * ?", "0 0 * * *"),
        ("0 0 12 ? * MON", "0 0 12 * * MON"),
    ]:
        assert cron(question).fire_times(after, 40) == cron(star).fire_times(after, 40)
        assert cron(question).describe() == cron(star).describe()


def test_spellings_of_the_same_day_agree() -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    groups = [
        ["0 0 * * 5L", "0 0 * * FRIL", "0 0 * * friL", "0 0 * * 5l"],
        ["0 0 * * 0L", "0 0 * * 7L", "0 0 * * SUNL"],
        ["0 0 * * 0#1", "0 0 * * 7#1", "0 0 * * Sun#1"],
        ["0 0 L * *", "0 0 L-0 * *", "0 0 l * *"],
        ["0 0 LW * *", "0 0 lw * *"],
    ]
    for group in groups:
        first = cron(group[0]).fire_times(after, 30)
        assert all(cron(other).fire_times(after, 30) == first for other in group[1:]), group


DESCRIPTIONS = [
    ("30 2 * * 0L", "at 02:30 on the last Sunday of the month"),
    ("0 0 L * *", "at 00:00 on the last day of the month"),
    ("0 0 L-1 * *", "at 00:00 on the day before the last day of the month"),
    ("0 0 L-3 * *", "at 00:00 on the day 3 days before the last day of the month"),
    ("0 0 1,15,L * *", "at 00:00 on day 1, day 15 and the last day of the month"),
    ("0 0 1-5,L * *", "at 00:00 on days 1 through 5 and the last day of the month"),
    ("0 0 */5,L * *", "at 00:00 on every 5th day and the last day of the month"),
    ("0 9 15W * *", "at 09:00 on the weekday nearest day 15 of the month"),
    ("0 18 LW * *", "at 18:00 on the last weekday of the month"),
    ("0 9 1W,LW * *", "at 09:00 on the weekday nearest day 1 and the last weekday of the month"),
    ("0 0 * * FRIL", "at 00:00 on the last Friday of the month"),
    ("0 0 * * MON#2", "at 00:00 on the second Monday of the month"),
    ("0 0 * * 3#5", "at 00:00 on the fifth Wednesday of the month"),
    ("0 0 * * 1-4,5L", "at 00:00 on Monday through Thursday and the last Friday of the month"),
    ("0 0 * * 1-5,5L", "at 00:00 on Monday through Friday"),  # the last Friday adds nothing
    ("0 0 12 ? * MON#2", "at 12:00 on the second Monday of the month"),
    ("*/5 * * * * ?", "every 5 seconds"),
    ("0 0 ? * ?", "at 00:00 every day"),
    ("0 0 L * 5", "at 00:00 on the last day of the month or on Friday"),
    (
        "0 0 15W * 1#1",
        "at 00:00 on the weekday nearest day 15 of the month or on the first Monday of the month",
    ),
    (
        "0 0 */2 * 5L",
        "at 00:00 on every 2nd day of the month if it is the last Friday of the month",
    ),
    ("0 0 L * 1-5", "at 00:00 on the last day of the month or on Monday through Friday"),
    (
        "0 0 L * */2",
        "at 00:00 on the last day of the month if it is a Tuesday, Thursday, Saturday or Sunday",
    ),
    ("0 0 1,L 2 *", "at 00:00 on day 1 and the last day of the month in February"),
    (
        "0 8 L-2 */3 *",
        "at 08:00 on the day 2 days before the last day of the month in "
        "January, April, July and October",
    ),
    # Either day field matching, and one of them matches every day: every day.
    ("0 0 1-31 * mon", "at 00:00 every day"),
]


@pytest.mark.parametrize(("expression", "description"), DESCRIPTIONS)
def test_describe(expression: str, description: str) -> None:
    assert cron(expression).describe() == description


DOM_ALLOWED = "L (the last day), L-3, 15W (the weekday nearest the 15th) and LW"
DOW_ALLOWED = "5L or FRIL (the last Friday of the month) and 1#2 or MON#2 (the second Monday)"
L_PLACES = (
    "'L' is allowed only in the day-of-month field (L, L-3, LW) and in the day-of-week field "
    "(5L, FRIL: the last Friday of the month)"
)

# (expression, message, column)
INVALID = [
    (
        "0 0 * L *",
        f"month field: {L_PLACES}",
        6,
    ),
    (
        "0 L * * *",
        f"hour field: {L_PLACES}",
        2,
    ),
    (
        "0 0 * jan,5L *",
        f"month field: {L_PLACES}",
        10,
    ),
    (
        "0 0 * 15W *",
        f"month field: 'W' is allowed only in the day-of-month field, as in {DOM_ALLOWED}",
        6,
    ),
    (
        "0 0 * * 15W",
        f"day-of-week field: 'W' is allowed only in the day-of-month field, as in {DOM_ALLOWED}",
        8,
    ),
    (
        "0 0 * * LW",
        f"day-of-week field: 'W' is allowed only in the day-of-month field, as in {DOM_ALLOWED}",
        8,
    ),
    (
        "0 0 1#2 * *",
        f"day-of-month field: '#' is allowed only in the day-of-week field, as in {DOW_ALLOWED}",
        4,
    ),
    (
        "0 0 * 1#2 *",
        f"month field: '#' is allowed only in the day-of-week field, as in {DOW_ALLOWED}",
        6,
    ),
    (
        "0 0 32W * *",
        "day-of-month field: 32 in '32W' is out of range 1-31; 'W' takes a single day "
        "(1W-31W) or LW",
        4,
    ),
    (
        "0 0 0W * *",
        "day-of-month field: 0 in '0W' is out of range 1-31; 'W' takes a single day (1W-31W) or LW",
        4,
    ),
    (
        "0 0 1,15,32W * *",
        "day-of-month field: 32 in '32W' is out of range 1-31; 'W' takes a single day "
        "(1W-31W) or LW",
        9,
    ),
    (
        "0 0 1-15W * *",
        "day-of-month field: 'W' takes a single day (1W-31W) or LW, not a range or a step; "
        "got '1-15W'",
        4,
    ),
    (
        "0 0 */2W * *",
        "day-of-month field: 'W' takes a single day (1W-31W) or LW, not a range or a step; "
        "got '*/2W'",
        4,
    ),
    ("0 0 xW * *", "day-of-month field: 'x' in 'xW' is not a number", 4),
    (
        "0 0 W * *",
        "day-of-month field: 'W' needs a day before it, e.g. 15W (the weekday nearest the "
        "15th) or LW (the last weekday)",
        4,
    ),
    (
        "0 0 L-31 * *",
        "day-of-month field: offset 31 in 'L-31' is out of range 0-30",
        4,
    ),
    (
        "0 0 L-x * *",
        "day-of-month field: 'L-x' is not valid; L-N takes a number of days, e.g. L-3 (3 days "
        "before the last day)",
        4,
    ),
    (
        "0 0 L/2 * *",
        "day-of-month field: 'L/2' is not valid; besides numbers, ranges, lists and steps, the "
        f"day-of-month field takes {DOM_ALLOWED}",
        4,
    ),
    (
        "0 0 1-L * *",
        "day-of-month field: '1-L' is not valid; besides numbers, ranges, lists and steps, the "
        f"day-of-month field takes {DOM_ALLOWED}",
        4,
    ),
    (
        "0 0 5L * *",
        "day-of-month field: '5L' is not valid; besides numbers, ranges, lists and steps, the "
        f"day-of-month field takes {DOM_ALLOWED}; 5L (a last weekday of the month) belongs in "
        "the day-of-week field",
        4,
    ),
    (
        "0 0 * * 1#6",
        "day-of-week field: 6 in '1#6' is out of range 1-5 (MON#2 is the second Monday of the "
        "month)",
        8,
    ),
    (
        "0 0 * * MON#0",
        "day-of-week field: 0 in 'MON#0' is out of range 1-5 (MON#2 is the second Monday of "
        "the month)",
        8,
    ),
    ("0 0 * * 8#1", "day-of-week field: 8 is out of range 0-7", 8),
    (
        "0 0 * * 1#x",
        "day-of-week field: '1#x' is not valid; '#' is followed by 1-5, as in MON#2 (the "
        "second Monday of the month)",
        8,
    ),
    (
        "0 0 * * #2",
        "day-of-week field: '#' needs a weekday before it (0-7 or sun-sat); got '#2'",
        8,
    ),
    (
        "0 0 * * 1-5#2",
        "day-of-week field: '#' takes a single weekday (0-7 or sun-sat), not a range or a "
        "step; got '1-5#2'",
        8,
    ),
    (
        "0 0 * * 1#2,3#4",
        "day-of-week field: '#' must be the only item of the field (e.g. MON#2); lists with "
        "'#' are not supported",
        8,
    ),
    (
        "0 0 * * FRI,MON#2",
        "day-of-week field: '#' must be the only item of the field (e.g. MON#2); lists with "
        "'#' are not supported",
        12,
    ),
    (
        "0 0 * * L",
        "day-of-week field: 'L' needs a weekday before it, e.g. 5L or FRIL (the last Friday of "
        "the month); the last day of the month is L in the day-of-month field",
        8,
    ),
    (
        "0 0 * * 1-5L",
        "day-of-week field: 'L' takes a single weekday (0-7 or sun-sat), not a range or a "
        "step; got '1-5L'",
        8,
    ),
    ("0 0 * * 9L", "day-of-week field: 9 is out of range 0-7", 8),
    (
        "0 0 * * FRIDAYL",
        "day-of-week field: 'FRIDAY' is not a number (0-7) or a name (sun-sat)",
        8,
    ),
    (
        "0 0 * * L-2",
        "day-of-week field: 'L-2' is not valid; besides numbers, names, ranges, lists and "
        f"steps, the day-of-week field takes {DOW_ALLOWED}",
        8,
    ),
    (
        "? 0 * * *",
        "'?' is allowed only in the day-of-month and day-of-week fields (where it means the "
        "same as '*'); use '*' in the minute field",
        0,
    ),
    (
        "0 0 * ? *",
        "'?' is allowed only in the day-of-month and day-of-week fields (where it means the "
        "same as '*'); use '*' in the month field",
        6,
    ),
    (
        "0 0 1,? * *",
        "day-of-month field: '?' must be the whole field (it means the same as '*')",
        6,
    ),
    (
        "0 0 * * ?/2",
        "day-of-week field: '?' must be the whole field (it means the same as '*')",
        8,
    ),
    # Nothing to run, ever.
    ("0 0 L-30 2 *", "never fires: day-of-month L-30 does not occur in month 2", 4),
    ("0 0 L-30 4,6,9,11 *", "never fires: day-of-month L-30 does not occur in month 4,6,9,11", 4),
    ("0 0 L-29,L-30 2 *", "never fires: day-of-month L-29,L-30 does not occur in month 2", 4),
    ("0 0 30W feb *", "never fires: day-of-month 30W does not occur in month feb", 4),
    ("0 0 L-30,31 4,6 ?", "never fires: day-of-month L-30,31 does not occur in month 4,6", 4),
    (
        "0 0 */31 * 1#2",
        "never fires: no day is both day-of-month */31 and day-of-week 1#2",
        4,
    ),
    (
        "0 0 */15 2 5#5",
        "never fires: no day is both day-of-month */15 and day-of-week 5#5 in month 2",
        4,
    ),
]


@pytest.mark.parametrize(("expression", "message", "column"), INVALID)
def test_invalid(expression: str, message: str, column: int) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    assert (str(caught.value), caught.value.column) == (message, column)


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 L-28 2 *",  # February 1 in leap years
        "0 0 29W 2 *",  # Feb 29 in leap years, or the weekday nearest it
        "0 0 * 2 1#5",  # a Monday Feb 29
        "0 0 */15 * 5#5",  # a fifth Friday on the 31st
        "0 0 31W 4 5L",  # no 31st in April, but day-of-week gives days (either field)
        "0 0 * jul 5L",  # "jul" is a month, not "ju" + "L"
    ],
)
def test_rare_but_possible_days_are_accepted(expression: str) -> None:
    assert cron(expression).next_after(datetime(2026, 1, 1, tzinfo=UTC)) is not None


# --- the resource's schemas accept what the model accepts ----------------------------------

ACCEPTED = sorted({expression for expression, _ in SPECS} | {row[1] for row in FIRES})


def _task(schedule: str) -> dict[str, Any]:
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "t"},
        "spec": {"schedule": schedule, "command": {"args": ["true"]}},
    }


@pytest.mark.parametrize("expression", ACCEPTED)
def test_model_json_schema_and_crd_accept(expression: str) -> None:
    TaskSpec.model_validate(_task(expression)["spec"])
    schema = json.loads((ROOT / "schemas" / "crontask.schema.json").read_text())
    jsonschema.validate(_task(expression), schema)
    crd = yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
    [version] = crd["spec"]["versions"]
    openapi_validator(version["schema"]["openAPIV3Schema"]).validate(_task(expression))


def test_model_refuses_what_the_parser_refuses() -> None:
    with pytest.raises(ValueError, match="32 in '32W' is out of range 1-31"):
        TaskSpec.model_validate(_task("0 0 32W * *")["spec"])
