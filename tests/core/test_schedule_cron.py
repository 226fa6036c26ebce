"""Cron semantics: Vixie's day-of-month/day-of-week rule, Sunday 0/7, names, steps, horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reconciler.core.schedule import CronSchedule, parse_schedule


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def days(expression: str, after: datetime, n: int) -> list[str]:
    return [fire.date().isoformat() for fire in parse_schedule(expression).fire_times(after, n)]


# (expression, after, expected fire dates); 2026-03-01 is a Sunday.
DAY_RULE = [
    # Both day fields restricted: a day matching EITHER runs (Fridays, and the 13th).
    (
        "0 0 13 * 5",
        utc(2026, 3, 1),
        ["2026-03-06", "2026-03-13", "2026-03-20", "2026-03-27", "2026-04-03", "2026-04-10"],
    ),
    ("0 0 13 * 5", utc(2026, 4, 10), ["2026-04-13", "2026-04-17"]),
    # Day-of-month starts with "*" (even "*/2"): a day must match BOTH (odd-numbered Fridays).
    ("0 0 */2 * 5", utc(2026, 3, 1), ["2026-03-13", "2026-03-27", "2026-04-03", "2026-04-17"]),
    # Day-of-week starts with "*": the 13th only when it is a Sunday/Tuesday/Thursday/Saturday.
    ("0 0 13 * */2", utc(2026, 1, 1), ["2026-01-13", "2026-06-13", "2026-08-13"]),
    # One of them "*": the other alone decides.
    ("0 0 * * 5", utc(2026, 3, 1), ["2026-03-06", "2026-03-13"]),
    ("0 0 13 * *", utc(2026, 3, 1), ["2026-03-13", "2026-04-13"]),
    # Sunday is 0 and 7; names; ranges through 7.
    ("0 0 * * 0", utc(2026, 3, 1), ["2026-03-08", "2026-03-15"]),
    ("0 0 * * 7", utc(2026, 3, 1), ["2026-03-08", "2026-03-15"]),
    ("0 0 * * sun", utc(2026, 3, 1), ["2026-03-08", "2026-03-15"]),
    ("0 0 * * 5-7", utc(2026, 3, 1), ["2026-03-06", "2026-03-07", "2026-03-08", "2026-03-13"]),
    ("0 0 * * fri-sun", utc(2026, 3, 1), ["2026-03-06", "2026-03-07", "2026-03-08"]),
    ("0 0 * * mon-fri", utc(2026, 3, 6), ["2026-03-09", "2026-03-10"]),
    ("0 0 * * 1/2", utc(2026, 3, 1), ["2026-03-02", "2026-03-04", "2026-03-06", "2026-03-08"]),
    # Months by name, steps, a/n.
    ("0 0 1 jan,jul *", utc(2026, 3, 1), ["2026-07-01", "2027-01-01"]),
    ("0 0 1 */4 *", utc(2026, 3, 1), ["2026-05-01", "2026-09-01", "2027-01-01"]),
    ("0 0 1 10/1 *", utc(2026, 3, 1), ["2026-10-01", "2026-11-01", "2026-12-01"]),
    ("0 0 30/1 * *", utc(2026, 1, 31), ["2026-03-30", "2026-03-31", "2026-04-30"]),
    # Rare days.
    ("0 0 31 * *", utc(2026, 1, 31), ["2026-03-31", "2026-05-31", "2026-07-31"]),
    ("0 0 29 2 *", utc(2026, 3, 1), ["2028-02-29", "2032-02-29"]),
    ("0 0 29 2 *", utc(2096, 3, 1), ["2104-02-29"]),  # 2100 is not a leap year
    ("@yearly", utc(2026, 3, 1), ["2027-01-01", "2028-01-01"]),
    ("@monthly", utc(2026, 3, 1), ["2026-04-01", "2026-05-01"]),
    ("@weekly", utc(2026, 3, 1), ["2026-03-08", "2026-03-15"]),
]


@pytest.mark.parametrize(("expression", "after", "expected"), DAY_RULE)
def test_day_rule(expression: str, after: datetime, expected: list[str]) -> None:
    assert days(expression, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/20 * * * * *", utc(2026, 3, 1, 12, 0, 30), ["12:00:40", "12:01:00", "12:01:20"]),
        ("15 30 9 * * *", utc(2026, 3, 1, 12), ["09:30:15", "09:30:15"]),
        ("*/15 * * * *", utc(2026, 3, 1, 12, 7), ["12:15:00", "12:30:00", "12:45:00"]),
        ("50/3 * * * *", utc(2026, 3, 1, 12, 58), ["12:59:00", "13:50:00", "13:53:00"]),
        ("0 22/1 * * *", utc(2026, 3, 1, 12), ["22:00:00", "23:00:00", "22:00:00"]),
        ("@hourly", utc(2026, 3, 1, 12), ["13:00:00", "14:00:00"]),
        ("@daily", utc(2026, 3, 1, 12), ["00:00:00", "00:00:00"]),
        ("@midnight", utc(2026, 3, 1, 0), ["00:00:00"]),
    ],
)
def test_times_of_day(expression: str, after: datetime, expected: list[str]) -> None:
    fires = parse_schedule(expression).fire_times(after, len(expected))
    assert [fire.time().isoformat() for fire in fires] == expected


def test_strictly_after() -> None:
    schedule = parse_schedule("0 2 * * *")
    assert schedule.next_after(utc(2026, 3, 1, 2)) == utc(2026, 3, 2, 2)
    assert schedule.next_after(utc(2026, 3, 1, 1, 59, 59)) == utc(2026, 3, 1, 2)
    almost = utc(2026, 3, 1, 1, 59, 59) + timedelta(microseconds=999_999)
    assert schedule.next_after(almost) == utc(2026, 3, 1, 2)
    assert schedule.next_after(utc(2026, 3, 1, 2) + timedelta(microseconds=1)) == utc(2026, 3, 2, 2)


def test_results_are_in_the_schedule_zone() -> None:
    schedule = parse_schedule("0 9 * * *", "Asia/Tokyo")
    fire = schedule.next_after(utc(2026, 2, 28, 12))
    assert fire is not None
    assert fire.tzinfo is ZoneInfo("Asia/Tokyo")
    assert fire.isoformat() == "2026-03-01T09:00:00+09:00"
    # The zone of the argument does not matter, only its instant.
    in_new_york = utc(2026, 2, 28, 12).astimezone(ZoneInfo("America/New_York"))
    assert schedule.next_after(in_new_york) == fire


def test_naive_datetimes_are_refused() -> None:
    schedule = parse_schedule("0 9 * * *")
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.next_after(datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.fire_times(datetime(2026, 3, 1), 3)
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.count_between(utc(2026, 3, 1), datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="must not be negative"):
        schedule.fire_times(utc(2026, 3, 1), -1)
    assert schedule.fire_times(utc(2026, 3, 1), 0) == []


def test_fire_times_equals_iterating_next_after() -> None:
    schedule = parse_schedule("*/7 1-3 * * mon,thu", "Europe/Berlin")
    fires = schedule.fire_times(utc(2026, 3, 20), 200)
    moment: datetime | None = utc(2026, 3, 20)
    for fire in fires:
        assert moment is not None
        moment = schedule.next_after(moment)
        assert moment == fire
    instants = [fire.timestamp() for fire in fires]
    assert instants == sorted(set(instants))


@pytest.mark.parametrize("month", range(1, 13))
def test_rarest_days_are_within_the_horizon(month: int) -> None:
    # "*/31" is day 1 and makes the day fields AND-ed: day 1 of `month` on a given weekday,
    # which can be 11+ years away. Every such day must still be found.
    for weekday in range(7):
        schedule = parse_schedule(f"0 0 */31 {month} {weekday}")
        for start in (utc(2026, 1, 1), utc(2090, 6, 1)):
            fire = schedule.next_after(start)
            assert fire is not None
            assert (fire.day, fire.month, fire.isoweekday() % 7) == (1, month, weekday)


def test_end_of_time() -> None:
    # Nothing fires from 9999-01-01 UTC on: datetime ends in 9999 and zones shift by up to a day.
    assert parse_schedule("0 0 * * *").next_after(utc(9999, 12, 30)) is None
    assert parse_schedule("0 0 * * *", "Pacific/Kiritimati").next_after(utc(9999, 6, 1)) is None
    assert parse_schedule("0 0 * * *").count_between(utc(9997, 12, 31), utc(9999, 12, 31)) == (
        365,
        utc(9998, 12, 31),
    )
    assert parse_schedule("@every 1h").next_after(utc(9999, 1, 1)) is None
    assert parse_schedule("0 0 29 2 *").next_after(utc(1, 1, 1)) == utc(4, 2, 29)


def test_count_between() -> None:
    schedule = parse_schedule("0 * * * *")
    assert schedule.count_between(utc(2026, 3, 1), utc(2026, 3, 2)) == (24, utc(2026, 3, 2))
    assert schedule.count_between(utc(2026, 3, 1), utc(2026, 3, 1, 0, 59)) == (0, None)
    assert schedule.count_between(utc(2026, 3, 2), utc(2026, 3, 1)) == (0, None)
    assert schedule.count_between(utc(2026, 3, 1), utc(2026, 3, 1)) == (0, None)


def test_count_between_sixty_days_of_minutes() -> None:
    # 60 days x 1440 minutes, across Berlin's spring-forward (a 23-hour day still has 60
    # minutes in each of its hours: the count is by real time for a wildcard hour field).
    schedule = parse_schedule("* * * * *", "Europe/Berlin")
    count, latest = schedule.count_between(utc(2026, 3, 1), utc(2026, 4, 30))
    assert count == 60 * 24 * 60
    assert latest == utc(2026, 4, 30)


def test_next_after_for_many_schedules_around_a_transition() -> None:
    zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
    schedules = [parse_schedule(f"{i % 60} {i % 24} * * *", zones[i % 4]) for i in range(1000)] + [
        parse_schedule(f"*/{1 + i % 30} * * * *", zones[i % 4]) for i in range(1000)
    ]
    schedules += [parse_schedule("0 0 29 2 *"), parse_schedule("0 0 */31 2 1", "Europe/Berlin")]
    start = utc(2026, 3, 29, 0, 30)
    for schedule in schedules:
        following = schedule.next_after(start)
        assert following is not None
        assert following > start


def test_macro_expressions_keep_their_text_and_dst_class() -> None:
    hourly = parse_schedule("@hourly", "Europe/Berlin")
    daily = parse_schedule("@daily", "Europe/Berlin")
    assert isinstance(hourly, CronSchedule)
    assert isinstance(daily, CronSchedule)
    assert hourly.wildcard
    assert not daily.wildcard
    # A wildcard fires 25 times on the fall-back day.
    berlin = ZoneInfo("Europe/Berlin")
    after = datetime(2026, 10, 25, tzinfo=berlin) - timedelta(seconds=1)
    until = datetime(2026, 10, 26, tzinfo=berlin) - timedelta(seconds=1)
    assert hourly.count_between(after, until)[0] == 25
    assert daily.count_between(after, until)[0] == 1
