"""describe(): schedules in plain English."""

from __future__ import annotations

import pytest

from reconciler.core.schedule import parse_schedule

DESCRIPTIONS = [
    ("0 2 * * *", "at 02:00 every day"),
    ("*/15 * * * *", "every 15 minutes"),
    ("0-59/15 * * * *", "every 15 minutes"),
    ("0 * * * *", "at minute 0 of every hour"),
    ("30 9 * * 1-5", "at 09:30 on Monday through Friday"),
    ("30 9 * * mon-fri", "at 09:30 on Monday through Friday"),
    ("*/30 * * * * *", "every 30 seconds"),
    ("@every 30s", "every 30 seconds"),
    ("0 0 1 * *", "at 00:00 on day 1 of the month"),
    ("* * * * *", "every minute"),
    ("* * * * * *", "every second"),
    ("0 */2 * * *", "at minute 0 of every 2nd hour"),
    # A step that does not divide its unit is no "every": the gap across the hour (or the
    # day) is shorter.
    ("*/40 * * * *", "at minutes 0 and 40 of every hour"),
    ("*/59 * * * *", "at minutes 0 and 59 of every hour"),
    ("*/45 * * * * *", "at seconds 0 and 45 of every minute"),
    ("0 */5 * * *", "at minute 0 of hours 0, 5, 10, 15 and 20"),
    ("*/10 */5 * * *", "every 10 minutes during hours 0, 5, 10, 15 and 20"),
    ("*/15 9-17 * * *", "every 15 minutes during hours 9 through 17"),
    ("0 9-17 * * *", "at minute 0 of hours 9 through 17"),
    ("* 2 * * *", "every minute during hour 2"),
    ("10 * * * * *", "at second 10 of every minute"),
    ("5,10,20,21,22 * * * *", "at minutes 5, 10 and 20 through 22 of every hour"),
    ("0,30 2 * * *", "at 02:00 and 02:30 every day"),
    ("15 30 9 * * *", "at 09:30:15 every day"),
    ("0 0 1,15 * *", "at 00:00 on days 1 and 15 of the month"),
    ("0 0 * * 5-7", "at 00:00 on Friday through Sunday"),
    ("0 0 * * 0,6", "at 00:00 on Saturday and Sunday"),
    ("0 0 13 * 5", "at 00:00 on day 13 of the month or on Friday"),
    ("0 0 */2 * 1", "at 00:00 on every 2nd day of the month if it is a Monday"),
    ("0 0 * 3-5 *", "at 00:00 every day in March through May"),
    ("0 12 1 */3 *", "at 12:00 on day 1 of the month in January, April, July and October"),
    ("0 0 25 12 *", "at 00:00 on December 25"),
    ("@yearly", "at 00:00 on January 1"),
    # A day of the week listed whole, not `*`: either field is enough, every day runs (as it
    # does under cron and a CronJob), so no single date is said.
    ("0 0 1 2 sun-sat", "at 00:00 every day in February"),
    ("0 0 1 2 0-6", "at 00:00 every day in February"),
    ("0 0 1 2 1,*", "at 00:00 every day in February"),
    ("0 9 25 12 mon-sun", "at 09:00 every day in December"),
    ("0 0 29 2 1-7", "at 00:00 every day in February"),
    ("0 0 1 2 ?", "at 00:00 on February 1"),
    ("0 0 29 2 *", "at 00:00 on February 29"),
    ("@monthly", "at 00:00 on day 1 of the month"),
    ("@weekly", "at 00:00 on Sunday"),
    ("@daily", "at 00:00 every day"),
    ("@hourly", "at minute 0 of every hour"),
    ("@every 1s", "every second"),
    ("@every 5m", "every 5 minutes"),
    ("@every 1h", "every hour"),
    ("@every 2h", "every 2 hours"),
    ("@every 1h30m", "every 1 hour 30 minutes"),
    ("@every 90s", "every 1 minute 30 seconds"),
    ("@every 24h", "every 24 hours"),
    ("@every 48h", "every 2 days"),
]


@pytest.mark.parametrize(("expression", "description"), DESCRIPTIONS)
def test_describe(expression: str, description: str) -> None:
    assert parse_schedule(expression).describe() == description


def test_describe_does_not_depend_on_the_zone() -> None:
    assert parse_schedule("0 2 * * *", "Europe/Berlin").describe() == "at 02:00 every day"


def test_describe_mentions_the_offset() -> None:
    assert parse_schedule("0 2 * * *").with_offset(37).describe() == (
        "at 02:00 every day, delayed by 37 seconds"
    )
    assert parse_schedule("*/15 * * * *").with_offset(3661).describe() == (
        "every 15 minutes, delayed by 1 hour 1 minute 1 second"
    )
