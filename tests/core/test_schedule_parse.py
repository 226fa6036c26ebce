"""Parsing schedule expressions and time zones: what is accepted, what it means, what is refused."""

from __future__ import annotations

import pickle

import pytest

from reconciler.core.schedule import (
    CronSchedule,
    EverySchedule,
    ScheduleError,
    parse_schedule,
    validate_time_zone,
)

ALL_MINUTES = tuple(range(60))
ALL_HOURS = tuple(range(24))
ALL_DAYS = tuple(range(1, 32))
ALL_MONTHS = tuple(range(1, 13))
ALL_WEEKDAYS = tuple(range(7))


def cron(expression: str) -> CronSchedule:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, CronSchedule)
    return schedule


# (expression, field, values): the values a field selects.
FIELD_VALUES = [
    ("* * * * *", "minutes", ALL_MINUTES),
    ("5 * * * *", "minutes", (5,)),
    ("05 * * * *", "minutes", (5,)),
    ("1,5,59 * * * *", "minutes", (1, 5, 59)),
    ("10-13 * * * *", "minutes", (10, 11, 12, 13)),
    ("*/15 * * * *", "minutes", (0, 15, 30, 45)),
    ("*/7 * * * *", "minutes", (0, 7, 14, 21, 28, 35, 42, 49, 56)),
    ("10-30/10 * * * *", "minutes", (10, 20, 30)),
    ("50/3 * * * *", "minutes", (50, 53, 56, 59)),  # a/n means a-59/n
    ("0-4,*/20,58 * * * *", "minutes", (0, 1, 2, 3, 4, 20, 40, 58)),
    ("0 */6 * * *", "hours", (0, 6, 12, 18)),
    ("0 9-17 * * *", "hours", tuple(range(9, 18))),
    ("0 22/1 * * *", "hours", (22, 23)),
    ("0 0 */10 * *", "days", (1, 11, 21, 31)),
    ("0 0 28/2 * *", "days", (28, 30)),
    ("0 0 * jan *", "months", (1,)),
    ("0 0 * JAN,Jul,dec *", "months", (1, 7, 12)),
    ("0 0 * mar-may *", "months", (3, 4, 5)),
    ("0 0 * */3 *", "months", (1, 4, 7, 10)),
    ("0 0 * feb/5 *", "months", (2, 7, 12)),
    ("0 0 * * *", "weekdays", ALL_WEEKDAYS),
    ("0 0 * * 0", "weekdays", (0,)),
    ("0 0 * * 7", "weekdays", (0,)),  # 7 is Sunday too
    ("0 0 * * 0,7", "weekdays", (0,)),
    ("0 0 * * 5-7", "weekdays", (0, 5, 6)),  # Fri, Sat, Sun
    ("0 0 * * mon-fri", "weekdays", (1, 2, 3, 4, 5)),
    ("0 0 * * MON-Fri", "weekdays", (1, 2, 3, 4, 5)),
    ("0 0 * * fri-sun", "weekdays", (0, 5, 6)),  # "sun" ending a range is 7
    ("0 0 * * sun-tue", "weekdays", (0, 1, 2)),
    ("0 0 * * sat,sun", "weekdays", (0, 6)),
    ("0 0 * * */2", "weekdays", (0, 2, 4, 6)),
    ("0 0 * * 1/2", "weekdays", (0, 1, 3, 5)),  # 1-7/2: Mon, Wed, Fri, Sun
    ("0 0 * * mon-fri/2", "weekdays", (1, 3, 5)),
    ("30 * * * * *", "seconds", (30,)),
    ("*/20 * * * * *", "seconds", (0, 20, 40)),
    ("* * * * *", "seconds", (0,)),  # five fields: second 0
]


@pytest.mark.parametrize(("expression", "field", "values"), FIELD_VALUES)
def test_field_values(expression: str, field: str, values: tuple[int, ...]) -> None:
    assert getattr(cron(expression).spec, field) == values


@pytest.mark.parametrize(
    ("expression", "dom_star", "dow_star", "hour_star"),
    [
        ("0 0 * * *", True, True, False),
        ("0 0 1 * mon", False, False, False),
        ("0 0 */2 * mon", True, False, False),
        ("0 0 1 * */2", False, True, False),
        ("0 * 1 * *", False, True, True),
        ("0 */1 * * *", True, True, True),
        ("0 */2 * * *", True, True, True),
        ("0 0-23 * * *", True, True, False),  # same hours as "*", but not a wildcard
        ("0 1,*/2 * * *", True, True, False),  # does not *start* with "*"
        ("0 0 0 * * *", True, True, False),
    ],
)
def test_star_flags(expression: str, dom_star: bool, dow_star: bool, hour_star: bool) -> None:
    spec = cron(expression).spec
    assert (spec.dom_star, spec.dow_star, spec.hour_star) == (dom_star, dow_star, hour_star)


@pytest.mark.parametrize(
    ("expression", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
        ("  @daily  ", "0 0 * * *"),
    ],
)
def test_macros(expression: str, same_as: str) -> None:
    schedule = cron(expression)
    assert schedule.spec == cron(same_as).spec
    assert schedule.expression == expression  # kept as given


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("@every 1s", 1),
        ("@every 30s", 30),
        ("@every 90s", 90),
        ("@every 5m", 300),
        ("@every 2h", 7200),
        ("@every 1h30m", 5400),
        ("@every 1h30m15s", 5415),
        ("@every 1m30s", 90),
        ("@every 1.5h", 5400),  # Go accepts fractions; the total is whole seconds
        ("@every 0.5m", 30),
        ("@EVERY 10s", 10),
        ("  @every\t10m ", 600),
    ],
)
def test_every_durations(expression: str, seconds: int) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, EverySchedule)
    assert schedule.interval == seconds


def test_whitespace_is_tolerated() -> None:
    assert cron("  */5\t1  * *   *  ").spec == cron("*/5 1 * * *").spec
    assert cron(" 0 0 * * * ").expression == " 0 0 * * * "


# (expression, message, column)
INVALID = [
    ("0 24 * * *", "hour field: 24 is out of range 0-23", 2),
    ("  0 24 * * *", "hour field: 24 is out of range 0-23", 4),
    ("60 * * * *", "minute field: 60 is out of range 0-59", 0),
    ("* * 0 * *", "day-of-month field: 0 is out of range 1-31", 4),
    ("* * 32 * *", "day-of-month field: 32 is out of range 1-31", 4),
    ("* * * 13 *", "month field: 13 is out of range 1-12", 6),
    ("* * * 0 *", "month field: 0 is out of range 1-12", 6),
    ("* * * * 8", "day-of-week field: 8 is out of range 0-7", 8),
    ("60 * * * * *", "second field: 60 is out of range 0-59", 0),
    ("0 60 * * * *", "minute field: 60 is out of range 0-59", 2),
    ("0 0 1-40 * *", "day-of-month field: 40 is out of range 1-31", 4),
    ("99999999 * * * *", "minute field: 999999... is out of range 0-59", 0),
    ("5-1 * * * *", "minute field: range 5-1 is reversed (start after end)", 0),
    ("* * * * fri-mon", "day-of-week field: range fri-mon is reversed (start after end)", 8),
    ("*/0 * * * *", "minute field: step 0 is out of range 1-59", 0),
    ("0 */24 * * *", "hour field: step 24 is out of range 1-23", 2),
    ("*/90 * * * *", "minute field: step 90 is out of range 1-59", 0),
    ("1/x * * * *", "minute field: step 'x' is not a number", 0),
    ("x * * * *", "minute field: 'x' is not a number", 0),
    ("² * * * *", "minute field: '²' is not a number", 0),
    # "5\ufb02".upper() is "5FL": it was read as 5L (and broke the API's Warning header).
    ("0 9 * * 1/2,5\ufb02", "day-of-week field: '5\ufb02' holds a character that is not ASCII", 12),
    ("0 9 1\u0131 * *", "day-of-month field: '1\u0131' holds a character that is not ASCII", 4),
    ("fri * * * *", "minute field: 'fri' is not a number", 0),
    ("* * * foo *", "month field: 'foo' is not a number (1-12) or a name (jan-dec)", 6),
    (
        "* * * * monday",
        "day-of-week field: 'monday' is not a number (0-7) or a name (sun-sat)",
        8,
    ),
    # Columns point at the offending item of a list.
    ("1,,2 * * * *", "minute field: empty list item in '1,,2'", 2),
    ("1, * * * *", "minute field: empty list item in '1,'", 2),
    ("0 1,2,24 * * *", "hour field: 24 is out of range 0-23", 6),
    ("0 0 * * mon,fri-tue", "day-of-week field: range fri-tue is reversed (start after end)", 12),
    ("1- * * * *", "minute field: '1-' is not a valid range", 0),
    ("-1 * * * *", "minute field: '-1' is not a valid range", 0),
    ("*-5 * * * *", "minute field: '*-5' is not a valid range", 0),
    ("1-2-3 * * * *", "minute field: '1-2-3' is not a valid range", 0),
    (
        "* * * *",
        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading "
        "second field), got 4",
        None,
    ),
    (
        "0 0 12 * * ? 2026",
        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading "
        "second field), got 7",
        13,
    ),
    (
        "",
        "empty schedule; expected a cron expression such as '0 2 * * *', a macro such as "
        "'@daily', or '@every 5m'",
        None,
    ),
    (
        "   ",
        "empty schedule; expected a cron expression such as '0 2 * * *', a macro such as "
        "'@daily', or '@every 5m'",
        None,
    ),
    ("0 0 30 2 *", "never fires: day-of-month 30 does not occur in month 2", 4),
    ("0 0 31 4,6 *", "never fires: day-of-month 31 does not occur in month 4,6", 4),
    ("0 0 30,31 feb *", "never fires: day-of-month 30,31 does not occur in month feb", 4),
    (
        "@reboot",
        "'@reboot' is not supported; crontask runs tasks on a schedule, not at start-up",
        0,
    ),
    (
        " @fortnightly",
        "unknown macro '@fortnightly'; use one of @yearly, @annually, @monthly, @weekly, "
        "@daily, @midnight, @hourly, @every <duration>",
        1,
    ),
    ("@daily 5", "'@daily' takes no arguments", 7),
    ("@every", "@every needs a duration (e.g. 30s, 5m, 1h30m)", 0),
    ("@every 0s", "@every: '0s' is shorter than the minimum of 1s", 7),
    ("@every 1.5s", "@every: '1.5s' is not a whole number of seconds", 7),
    ("@every 500ms", "@every: unit 'ms' is not supported; the shortest interval is 1s", 7),
    ("@every 5", "@every: missing unit in '5'; use h, m and s (e.g. 30s, 5m, 1h30m)", 7),
    ("@every 5d", "@every: unknown unit 'd' in '5d'; use h, m and s (e.g. 30s, 5m, 1h30m)", 7),
    ("@every -5m", "@every: '-5m' is not a duration (e.g. 30s, 5m, 1h30m)", 7),
    ("@every 1h 30m", "@every takes one duration without spaces, e.g. '@every 1h30m'", 10),
]


@pytest.mark.parametrize(("expression", "message", "column"), INVALID)
def test_invalid_expressions(expression: str, message: str, column: int | None) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    assert str(caught.value) == message
    assert caught.value.column == column


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 29 2 *",  # leap days only
        "0 0 31 * *",  # months with 31 days only
        "0 0 30 2 mon",  # both day fields restricted: every Monday in February
        "0 0 */30 2 *",  # starts with "*": day 1 of February
        "0 0 31 2,3 *",
    ],
)
def test_rare_but_possible_days_are_accepted(expression: str) -> None:
    parse_schedule(expression)


def test_schedule_error_is_a_value_error_and_pickles() -> None:
    error = ScheduleError("hour field: 24 is out of range 0-23", 2)
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (str(copy), copy.column) == (str(error), 2)


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "EST5EDT"]
)
def test_valid_time_zones(name: str) -> None:
    assert validate_time_zone(name).key == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Europe/Berln", "unknown time zone 'Europe/Berln'"),
        ("", "time zone must not be empty"),
        (" ", "time zone must not be empty"),
        ("/etc/localtime", "unknown time zone '/etc/localtime'"),
        ("/usr/share/zoneinfo/UTC", "unknown time zone '/usr/share/zoneinfo/UTC'"),
        ("../../etc/passwd", "unknown time zone '../../etc/passwd'"),
        ("Europe/../UTC", "unknown time zone 'Europe/../UTC'"),
        ("localtime", "unknown time zone 'localtime'"),
        ("posixrules", "unknown time zone 'posixrules'"),
        ("right/UTC", "unknown time zone 'right/UTC'"),
        ("posix/Europe/Berlin", "unknown time zone 'posix/Europe/Berlin'"),
        ("Europe", "unknown time zone 'Europe'"),
        ("utc", "unknown time zone 'utc' (did you mean 'UTC'?)"),
        (" UTC", "unknown time zone ' UTC' (did you mean 'UTC'?)"),
        ("Europe\\Berlin", "unknown time zone 'Europe\\\\Berlin'"),
    ],
)
def test_invalid_time_zones(name: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate_time_zone(name)
    assert str(caught.value) == message
    assert caught.value.column is None


def test_parse_schedule_checks_the_zone() -> None:
    for expression in ("0 0 * * *", "@daily", "@every 5m"):
        with pytest.raises(ScheduleError) as caught:
            parse_schedule(expression, "Mars/Olympus")
        assert str(caught.value) == "unknown time zone 'Mars/Olympus'"
    assert parse_schedule("0 0 * * *", "Asia/Tokyo").zone.key == "Asia/Tokyo"
    assert parse_schedule("0 0 * * *").zone.key == "UTC"


def test_value_semantics() -> None:
    assert parse_schedule("0 2 * * *", "Europe/Berlin") == parse_schedule(
        "0 2 * * *", "Europe/Berlin"
    )
    assert parse_schedule("0 2 * * *") != parse_schedule("0 2 * * *", "Europe/Berlin")
    assert parse_schedule("0 2 * * *") != parse_schedule("0 2 * * *").with_offset(5)
    assert len({parse_schedule("@every 5m"), parse_schedule("@every 5m")}) == 1
    assert repr(parse_schedule("@every 5m").with_offset(3)) == (
        "EverySchedule('@every 5m', 'UTC', offset=3)"
    )
