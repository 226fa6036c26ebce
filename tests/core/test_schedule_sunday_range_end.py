"""A day-of-week range ending with the name ``sun``: Sunday is 7 there only when the range starts
after Sunday (``fri-sun`` is Friday to Sunday); ``sun-sun`` and ``0-sun`` are Sunday alone, as
in a Kubernetes CronJob (robfig/cron: ``sun`` is 0, so they are ``0-0``) and in Vixie cron.
They used to read as 0-7, every day.

The CronJob's reading is computed here independently of the parser, from robfig/cron's rule
(names are 0-6 with Sunday 0, a range is ``start-end/step``, a reversed one is refused)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.core.schedule import parse_schedule
from reconciler.core.schedule.fields import WEEKDAY_NAMES, parse_cron


def spelled(day: int, how: str) -> str:
    return str(day) if how == "number" else WEEKDAY_NAMES[day].upper()


@pytest.mark.parametrize("start", range(7))
@pytest.mark.parametrize("end", range(7))
@pytest.mark.parametrize("how", ["number-name", "name-name", "name-number"])
@pytest.mark.parametrize("step", [None, 1, 2, 3, 7])
def test_a_range_a_cronjob_accepts_selects_its_days(
    start: int, end: int, how: str, step: int | None
) -> None:
    if start > end:
        return  # a CronJob refuses it; "fri-sun" is below
    first, last = how.split("-")
    field = f"{spelled(start, first)}-{spelled(end, last)}"
    if step is not None:
        field += f"/{step}"
    cronjobs = set(range(start, end + 1, step or 1))
    assert set(parse_cron(f"0 0 * * {field}").weekdays) == cronjobs


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("sun-sun", ["Sun 06", "Sun 13", "Sun 20"]),
        ("0-sun", ["Sun 06", "Sun 13", "Sun 20"]),
        ("SUN-SUN/2", ["Sun 06", "Sun 13", "Sun 20"]),
        # starting after Sunday, "sun" still ends the week
        ("fri-sun", ["Fri 04", "Sat 05", "Sun 06"]),
        ("sat-SUN", ["Sat 05", "Sun 06", "Sat 12"]),
        ("7-sun", ["Sun 06", "Sun 13", "Sun 20"]),
        ("sun-7", ["Wed 02", "Thu 03", "Fri 04"]),  # the number 7 is Sunday at the end
        ("0-7", ["Wed 02", "Thu 03", "Fri 04"]),
    ],
)
def test_the_days_it_runs(field: str, days: list[str]) -> None:
    schedule = parse_schedule(f"0 0 * * {field}", "UTC")
    fires = schedule.fire_times(datetime(2026, 12, 1, tzinfo=UTC), 3)
    assert [at.strftime("%a %d") for at in fires] == days


def test_sunday_alone_is_described_as_sunday() -> None:
    assert parse_schedule("0 0 * * sun-sun").describe() == "at 00:00 on Sunday"
