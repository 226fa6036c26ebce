"""The warning for a day field whose ``*`` is not its first item (``0 0 1,* * 1``): here a day
field is unrestricted only when it starts with ``*`` (Vixie cron), so a day matching either
field runs, every day; a Kubernetes CronJob (robfig/cron) counts a ``*`` item anywhere, and a day
must match both fields. Told exactly when the days differ, and its two rewrites mean what it
says they mean.

The CronJob's reading is computed here independently of the parser, from robfig/cron's rule
(any item ``*`` or ``*/1`` marks its field a star; with either field a star a day must match
both, else either); ours from the days the schedule fires on."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from reconciler.core.schedule import parse_schedule
from reconciler.core.schedule.cronjob import cronjob_difference

FIRST, LAST = date(2024, 1, 1), date(2025, 12, 31)  # a February of 29 days and one of 28
_NAMES = {"SUN": 0, "MON": 1}


def _values(field: str, low: int, high: int) -> tuple[set[int], bool]:
    """robfig/cron's getField for the items used here: the values and the star bit."""
    values: set[int] = set()
    star = False
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            start, end = low, high
            star = star or step == 1
        else:
            first, _, last = span.partition("-")
            start = _value(first)
            end = _value(last) if last else high if step_text else start  # "N/step": N-high
        values |= set(range(start, end + 1, step))
    return values, star


def _value(text: str) -> int:
    return _NAMES[text] if text in _NAMES else int(text)


def days_in_a_cronjob(expression: str) -> set[date]:
    _, _, dom, month, dow = expression.split()
    days, dom_star = _values(dom, 1, 31)
    weekdays, dow_star = _values(dow, 0, 6)
    months, _ = _values(month, 1, 12)
    found: set[date] = set()
    day = FIRST
    while day <= LAST:
        by_dom, by_dow = day.day in days, day.isoweekday() % 7 in weekdays
        both = dom_star or dow_star
        if day.month in months and ((by_dom and by_dow) if both else (by_dom or by_dow)):
            found.add(day)
        day += timedelta(days=1)
    return found


def days_here(expression: str) -> set[date]:
    schedule = parse_schedule(expression, "UTC")
    found: set[date] = set()
    at = datetime.combine(FIRST, datetime.min.time(), UTC) - timedelta(seconds=1)
    while (fire := schedule.next_after(at)) is not None and fire.date() <= LAST:
        found.add(fire.date())
        at = fire
    return found


DOM = ["1", "1,*", "*,1", "1,*/1", "1,*/2", "*", "1-31", "15,*", "1-28", "1-29"]
DOW = ["1", "MON,*", "*,MON", "*", "1,*/1", "0-6", "1-5,*", "SUN,1,*/1"]


@pytest.mark.parametrize("dom", DOM)
@pytest.mark.parametrize("dow", DOW)
@pytest.mark.parametrize("month", ["*", "2"])
def test_told_exactly_when_the_days_differ(dom: str, dow: str, month: str) -> None:
    expression = f"0 0 {dom} {month} {dow}"
    why = cronjob_difference(expression)
    here, there = days_here(expression), days_in_a_cronjob(expression)
    assert (why is not None) == (here != there), why
    if why is None:
        return
    field = "day-of-month" if why.startswith("day-of-month") else "day-of-week"
    assert why.startswith(f"{field} {(dom if field == 'day-of-month' else dow)!r} has '*' after")
    cronjobs, keep = re.findall(r"write '([^']+)' for the CronJob's days or '([^']+)'", why)[0]
    for rewrite, days in ((cronjobs, there), (keep, here)):
        rewritten = (
            f"0 0 {rewrite} {month} {dow}"
            if field == "day-of-month"
            else f"0 0 {dom} {month} {rewrite}"
        )
        assert days_here(rewritten) == days
        assert days_in_a_cronjob(rewritten) == days
        assert cronjob_difference(rewritten) is None


def test_the_reviewers_cases() -> None:
    why = cronjob_difference("0 0 1,* * 1")
    assert why is not None
    assert why.startswith("day-of-month '1,*' has '*' after its first item")
    assert "write '*' for the CronJob's days or '1-31' for these" in why
    why = cronjob_difference("0 0 1 * MON,*")
    assert why is not None
    assert "write '*' for the CronJob's days or '0-6' for these" in why


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 *,1 * 1",  # starts with "*": unrestricted in both
        "0 0 1,*/2 * 1",  # a stepped "*" is no star in a CronJob either
        "0 0 1,* * *",  # the other field is unrestricted in both: every day in both
        "0 0 1,* * 0-6",  # ... or selects every day
        "0 0 1,* * 1,*",  # both fields every day in both
        "0 0 0 1,* * 1",  # six fields: a CronJob refuses them
        "0 0 1,* * 5L",  # a CronJob refuses Quartz items
        "0 0 1,* * 7",  # ... and 7
        "0 0 1,* * 0-7",
        "0 0 1,* * fri-sun",  # ... and a range to its 0, Sunday, from a later day
        "0 0 1,* * SAT-SUN/2",
        "0 0 1 * ?",  # "?", every day in both: it raised, and stopped the pass that read it
        "0 0 ? * 1",
        "0 0 1,* * ?",
        "0 0 ? * MON-FRI",
    ],
)
def test_nothing_to_tell(expression: str) -> None:
    parse_schedule(expression)  # only what parses is asked about
    assert cronjob_difference(expression) is None


def test_told_with_the_weekday_step_difference() -> None:
    why = cronjob_difference("0 0 1,* * 1/2")
    assert why is not None
    assert "runs to Sunday here" in why
    assert "has '*' after its first item" in why
