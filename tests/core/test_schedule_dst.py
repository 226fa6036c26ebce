"""Time zones and DST: exact fire instants around real 2026 transitions.

The rule (Vixie cron / cronie), selected by the hour field alone:
* wildcard (hour starts with "*"): every instant whose wall time matches; skipped wall times do
  not fire, repeated wall times fire twice;
* fixed: repeated wall times fire once (first occurrence); wall times in a spring-forward gap
  fire once, together, at the instant of the jump.

2026 transitions used (from tzdata):
  Europe/Berlin        03-29 01:00Z 02:00+01 -> 03:00+02   10-25 01:00Z 03:00+02 -> 02:00+01
  America/New_York     03-08 07:00Z 02:00-05 -> 03:00-04   11-01 06:00Z 02:00-04 -> 01:00-05
  Australia/Lord_Howe  04-04 15:00Z 02:00+11 -> 01:30+1030 10-03 15:30Z 02:00+1030 -> 02:30+11
  Australia/Sydney     04-04 16:00Z 03:00+11 -> 02:00+10   10-03 16:00Z 02:00+10 -> 03:00+11
  America/Havana       03-08 05:00Z 00:00-05 -> 01:00-04   11-01 05:00Z 01:00-04 -> 00:00-05
  America/Santiago     04-05 03:00Z 24:00-03 -> 23:00-04   09-06 04:00Z 00:00-04 -> 01:00-03
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from reconciler.core.schedule import parse_schedule

# (zone, expression, after, expected fire instants as RFC 3339 in the zone)
FIRES = [
    # --- A minute field that starts with "*" does not make the hour a wildcard (as cronie's
    # MIN_STAR would): the README says what differs ---
    (
        "America/New_York",
        "*/15 2 * * *",
        "2026-03-08T00:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"],
    ),
    (
        "America/New_York",
        "*/15 1 * * *",
        "2026-11-01T00:30:00-04:00",
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:15:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:45:00-04:00",
            "2026-11-02T01:00:00-05:00",
        ],
    ),
    # --- Europe/Berlin, spring forward: 02:00-03:00 does not exist on 03-29 ---
    (
        "Europe/Berlin",
        "30 2 * * *",
        "2026-03-28T00:00:00+01:00",
        ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    (
        "Europe/Berlin",
        "0,30 2 * * *",
        "2026-03-29T00:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    (  # a slot in the gap and a slot at the jump instant fire once, together
        "Europe/Berlin",
        "30 2,3 * * *",
        "2026-03-29T00:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    (
        "Europe/Berlin",
        "0 * * * *",
        "2026-03-29T00:30:00+01:00",
        ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
    ),
    (
        "Europe/Berlin",
        "*/15 * * * *",
        "2026-03-29T01:30:00+01:00",
        ["2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"],
    ),
    (  # wildcard with a step in the hour field: 02:00 does not exist, so it is skipped
        "Europe/Berlin",
        "0 */2 * * *",
        "2026-03-29T00:30:00+01:00",
        ["2026-03-29T04:00:00+02:00", "2026-03-29T06:00:00+02:00"],
    ),
    # --- Europe/Berlin, fall back: 02:00-03:00 happens twice on 10-25 ---
    (
        "Europe/Berlin",
        "30 2 * * *",
        "2026-10-24T00:00:00+02:00",
        ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    ),
    (
        "Europe/Berlin",
        "0,30 2 * * *",
        "2026-10-25T00:00:00+02:00",
        ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:00:00+01:00"],
    ),
    (  # asked from inside the second occurrence: the repeated slots have already fired
        "Europe/Berlin",
        "0,30 2 * * *",
        "2026-10-25T02:10:00+01:00",
        ["2026-10-26T02:00:00+01:00"],
    ),
    (
        "Europe/Berlin",
        "0 * * * *",
        "2026-10-25T01:30:00+02:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
    ),
    (
        "Europe/Berlin",
        "*/15 * * * *",
        "2026-10-25T02:30:00+02:00",
        [
            "2026-10-25T02:45:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:15:00+01:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T02:45:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ],
    ),
    (  # seconds follow the same rule (fixed: hour 2)
        "Europe/Berlin",
        "*/20 59 2 * * *",
        "2026-10-25T02:58:00+02:00",
        [
            "2026-10-25T02:59:00+02:00",
            "2026-10-25T02:59:20+02:00",
            "2026-10-25T02:59:40+02:00",
            "2026-10-26T02:59:00+01:00",
        ],
    ),
    (  # seconds, wildcard hour: both occurrences
        "Europe/Berlin",
        "30 59 * * * *",
        "2026-10-25T02:00:00+02:00",
        ["2026-10-25T02:59:30+02:00", "2026-10-25T02:59:30+01:00", "2026-10-25T03:59:30+01:00"],
    ),
    (  # seconds in the gap: one firing at the jump
        "Europe/Berlin",
        "*/10 30 2 * * *",
        "2026-03-29T00:00:00+01:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    # --- America/New_York ---
    (
        "America/New_York",
        "30 2 * * *",
        "2026-03-07T00:00:00-05:00",
        ["2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "America/New_York",
        "0,30 2 * * *",
        "2026-03-08T00:00:00-05:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (  # 02:30 is not repeated in New York (01:00-02:00 is)
        "America/New_York",
        "30 2 * * *",
        "2026-10-31T00:00:00-04:00",
        ["2026-10-31T02:30:00-04:00", "2026-11-01T02:30:00-05:00", "2026-11-02T02:30:00-05:00"],
    ),
    (
        "America/New_York",
        "0,30 1 * * *",
        "2026-11-01T00:00:00-04:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:00:00-05:00"],
    ),
    (
        "America/New_York",
        "0 * * * *",
        "2026-03-08T00:30:00-05:00",
        ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"],
    ),
    (
        "America/New_York",
        "*/15 * * * *",
        "2026-11-01T01:30:00-04:00",
        [
            "2026-11-01T01:45:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:15:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T01:45:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    ),
    # --- Australia/Lord_Howe: 30-minute shifts ---
    (  # 01:30-02:00 repeated on 04-05: fixed fires at the first occurrence
        "Australia/Lord_Howe",
        "45 1 * * *",
        "2026-04-05T00:00:00+11:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    ),
    (
        "Australia/Lord_Howe",
        "*/15 * * * *",
        "2026-04-05T01:20:00+11:00",
        [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ],
    ),
    (  # 02:00-02:30 skipped on 10-04: the jump instant is 02:30+11:00
        "Australia/Lord_Howe",
        "15 2 * * *",
        "2026-10-04T00:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    (  # 02:15 (gap) and 02:30 (the jump instant itself) fire once, together
        "Australia/Lord_Howe",
        "15,30 2 * * *",
        "2026-10-04T00:00:00+10:30",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00", "2026-10-05T02:30:00+11:00"],
    ),
    (
        "Australia/Lord_Howe",
        "0 * * * *",
        "2026-10-04T01:30:00+10:30",
        ["2026-10-04T03:00:00+11:00"],
    ),
    # --- midnight transitions ---
    (  # Havana: local midnight does not exist on 03-08
        "America/Havana",
        "0 0 * * *",
        "2026-03-06T12:00:00-05:00",
        ["2026-03-07T00:00:00-05:00", "2026-03-08T01:00:00-04:00", "2026-03-09T00:00:00-04:00"],
    ),
    (  # Havana: 00:00-01:00 happens twice on 11-01
        "America/Havana",
        "0 0 * * *",
        "2026-10-30T12:00:00-04:00",
        ["2026-10-31T00:00:00-04:00", "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"],
    ),
    (
        "America/Havana",
        "30 * * * *",
        "2026-11-01T00:00:00-04:00",
        ["2026-11-01T00:30:00-04:00", "2026-11-01T00:30:00-05:00", "2026-11-01T01:30:00-05:00"],
    ),
    (  # a weekly task on a Sunday without midnight
        "America/Havana",
        "@weekly",
        "2026-03-01T12:00:00-05:00",
        ["2026-03-08T01:00:00-04:00", "2026-03-15T00:00:00-04:00"],
    ),
    (  # Santiago: midnight skipped on 09-06
        "America/Santiago",
        "0 0 * * *",
        "2026-09-04T12:00:00-04:00",
        ["2026-09-05T00:00:00-04:00", "2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"],
    ),
    (  # Santiago: 23:00-24:00 repeated on 04-04
        "America/Santiago",
        "30 23 * * *",
        "2026-04-04T12:00:00-03:00",
        ["2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"],
    ),
    (
        "America/Santiago",
        "30 * * * *",
        "2026-04-04T22:00:00-03:00",
        [
            "2026-04-04T22:30:00-03:00",
            "2026-04-04T23:30:00-03:00",
            "2026-04-04T23:30:00-04:00",
            "2026-04-05T00:30:00-04:00",
        ],
    ),
    # --- southern hemisphere: Australia/Sydney ---
    (
        "Australia/Sydney",
        "30 2 * * *",
        "2026-04-04T12:00:00+11:00",
        ["2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"],
    ),
    (
        "Australia/Sydney",
        "30 2 * * *",
        "2026-10-03T12:00:00+10:00",
        ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"],
    ),
    # --- no DST ---
    (
        "UTC",
        "30 2 * * *",
        "2026-03-28T00:00:00+00:00",
        ["2026-03-28T02:30:00+00:00", "2026-03-29T02:30:00+00:00"],
    ),
    (
        "Asia/Tokyo",
        "0 9 * * mon-fri",
        "2026-03-27T10:00:00+09:00",
        ["2026-03-30T09:00:00+09:00", "2026-03-31T09:00:00+09:00"],
    ),
    (
        "Asia/Kathmandu",
        "0 0 1 * *",
        "2026-01-15T00:00:00+05:45",
        ["2026-02-01T00:00:00+05:45", "2026-03-01T00:00:00+05:45"],
    ),
]


@pytest.mark.parametrize(("zone", "expression", "after", "expected"), FIRES)
def test_fire_times(zone: str, expression: str, after: str, expected: list[str]) -> None:
    schedule = parse_schedule(expression, zone)
    fires = schedule.fire_times(datetime.fromisoformat(after), len(expected))
    assert [fire.isoformat() for fire in fires] == expected
    assert all(fire.tzinfo is schedule.zone for fire in fires)
    # Strictly increasing instants (compared in UTC: same-tzinfo comparisons ignore fold).
    instants = [fire.timestamp() for fire in fires]
    assert instants == sorted(set(instants))
    assert instants[0] > datetime.fromisoformat(after).timestamp()


@pytest.mark.parametrize(("zone", "expression", "after", "expected"), FIRES)
def test_next_after_chains(zone: str, expression: str, after: str, expected: list[str]) -> None:
    schedule = parse_schedule(expression, zone)
    moment: datetime | None = datetime.fromisoformat(after)
    for want in expected:
        assert moment is not None
        moment = schedule.next_after(moment)
        assert moment is not None
        assert moment.isoformat() == want
        # Asking again from the result, expressed in another zone, gives the next one.
        assert schedule.next_after(moment.astimezone(UTC)) == schedule.next_after(moment)


def test_next_after_exactly_at_the_jump() -> None:
    schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert schedule.next_after(jump - timedelta(microseconds=1)) == jump
    assert schedule.next_after(jump - timedelta(seconds=1)) == jump
    fire = schedule.next_after(jump)
    assert fire is not None
    assert fire.isoformat() == "2026-03-30T02:30:00+02:00"


# (zone, expression, local date, fires during that local day)
COUNTS = [
    ("Europe/Berlin", "0 * * * *", date(2026, 3, 29), 23),
    ("Europe/Berlin", "0 * * * *", date(2026, 10, 25), 25),
    ("Europe/Berlin", "0 * * * *", date(2026, 10, 26), 24),
    ("Europe/Berlin", "*/15 * * * *", date(2026, 3, 29), 92),
    ("Europe/Berlin", "*/15 * * * *", date(2026, 10, 25), 100),
    ("Europe/Berlin", "30 2 * * *", date(2026, 3, 29), 1),
    ("Europe/Berlin", "30 2 * * *", date(2026, 10, 25), 1),
    ("Europe/Berlin", "0,30 2 * * *", date(2026, 3, 29), 1),
    ("Europe/Berlin", "0,30 2 * * *", date(2026, 10, 25), 2),
    ("Europe/Berlin", "0 9-17 * * *", date(2026, 3, 29), 9),
    # Fixed: 02:00 (in the gap) fires at the jump, which is also 03:00's instant: one firing.
    ("Europe/Berlin", "0 0-23 * * *", date(2026, 3, 29), 23),
    ("Europe/Berlin", "0 0-23 * * *", date(2026, 10, 25), 24),  # fixed: 02:00 fires once
    ("Europe/Berlin", "* * * * * *", date(2026, 3, 29), 23 * 3600),
    ("Europe/Berlin", "* * * * * *", date(2026, 10, 25), 25 * 3600),
    ("America/New_York", "0 * * * *", date(2026, 3, 8), 23),
    ("America/New_York", "0 * * * *", date(2026, 11, 1), 25),
    ("America/New_York", "*/15 * * * *", date(2026, 3, 8), 92),
    ("America/New_York", "*/15 * * * *", date(2026, 11, 1), 100),
    ("America/New_York", "30 2 * * *", date(2026, 3, 8), 1),
    ("America/New_York", "0,30 2 * * *", date(2026, 3, 8), 1),
    ("America/New_York", "0,30 1 * * *", date(2026, 11, 1), 2),
    # Lord Howe: the repeated/skipped half hours contain no full hour.
    ("Australia/Lord_Howe", "0 * * * *", date(2026, 4, 5), 24),
    ("Australia/Lord_Howe", "0 * * * *", date(2026, 10, 4), 23),
    ("Australia/Lord_Howe", "*/30 * * * *", date(2026, 4, 5), 49),
    ("Australia/Lord_Howe", "*/30 * * * *", date(2026, 10, 4), 47),
    ("Australia/Lord_Howe", "0,30 1 * * *", date(2026, 4, 5), 2),
    ("Australia/Sydney", "0 * * * *", date(2026, 4, 5), 25),
    ("Australia/Sydney", "0 * * * *", date(2026, 10, 4), 23),
    ("America/Havana", "0 * * * *", date(2026, 3, 8), 23),
    ("America/Havana", "0 * * * *", date(2026, 11, 1), 25),
    ("America/Havana", "0 0 * * *", date(2026, 3, 8), 1),
    ("America/Havana", "0 0 * * *", date(2026, 11, 1), 1),
    ("America/Santiago", "0 * * * *", date(2026, 4, 4), 25),
    ("America/Santiago", "0 * * * *", date(2026, 9, 6), 23),
    ("UTC", "0 * * * *", date(2026, 3, 29), 24),
    ("Asia/Tokyo", "*/15 * * * *", date(2026, 3, 29), 96),
]


def day_bounds(zone: ZoneInfo, day: date) -> tuple[datetime, datetime]:
    """(just before the local day's first instant, just before the next day's first instant).

    The local day is every instant whose local date is ``day`` (its midnight may not exist);
    all transitions here happen on quarter hours, so 15-minute UTC steps find its edges.
    """
    step = timedelta(minutes=15)
    probe = datetime.combine(day, time(), UTC) - timedelta(hours=15)
    while probe.astimezone(zone).date() < day:
        probe += step
    start = probe
    while probe.astimezone(zone).date() == day:
        probe += step
    return start - timedelta(microseconds=1), probe - timedelta(microseconds=1)


@pytest.mark.parametrize(("zone", "expression", "day", "expected"), COUNTS)
def test_count_per_local_day(zone: str, expression: str, day: date, expected: int) -> None:
    schedule = parse_schedule(expression, zone)
    after, until = day_bounds(schedule.zone, day)
    count, latest = schedule.count_between(after, until)
    assert count == expected
    assert latest is not None
    assert latest.astimezone(schedule.zone).date() == day
