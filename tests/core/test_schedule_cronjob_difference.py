"""The warning for a weekday step that a Kubernetes CronJob reads to other days: told exactly
when the days differ, and its two rewrites mean what it says they mean.

The CronJob's reading is computed here independently of the parser, from robfig/cron's rule
(``N/step`` is ``N-6/step``, Sunday is 0, 7 is out of its range); ours from ``parse_cron``."""

from __future__ import annotations

import re

import pytest

from reconciler.core.schedule.cronjob import cronjob_difference
from reconciler.core.schedule.fields import WEEKDAY_NAMES, parse_cron


def days_here(field: str) -> set[int]:
    return set(parse_cron(f"0 9 * * {field}").weekdays)


def days_in_a_cronjob(start: int, step: int) -> set[int]:
    return set(range(start, 7, step))  # robfig/cron: "N/step" is N-6/step


@pytest.mark.parametrize("start", range(7))
@pytest.mark.parametrize("step", range(1, 8))  # 1-7: ours refuses a larger one
@pytest.mark.parametrize("spelled", ["number", "name"])
def test_told_exactly_when_the_days_differ(start: int, step: int, spelled: str) -> None:
    first = str(start) if spelled == "number" else WEEKDAY_NAMES[start].upper()
    field = f"{first}/{step}"
    why = cronjob_difference(f"0 9 * * {field}")
    here, there = days_here(field), days_in_a_cronjob(start, step)
    assert (why is not None) == (here != there)
    if why is None:
        return
    keep, cronjobs = re.findall(r"write '([^']+)' for these days or '([^']+)'", why)[0]
    assert days_here(keep) == here  # "these days": what runs now
    assert "7" not in keep  # ... in a range a CronJob reads alike (it refuses 7)
    assert days_here(cronjobs) == there  # the CronJob's days, read here too
    assert cronjob_difference(f"0 9 * * {keep}") is None
    assert cronjob_difference(f"0 9 * * {cronjobs}") is None


def test_a_list_is_judged_as_a_whole() -> None:
    # Sunday comes from another item anyway: the same days in both.
    assert cronjob_difference("0 9 * * 0,1/2") is None
    why = cronjob_difference("0 9 * * 3/2,1")
    assert why is not None
    assert "(Monday, Wednesday, Friday, Sunday)" in why
    assert "write '3-6/2,1,0' for these days or '3-6/2,1' for the CronJob's" in why


@pytest.mark.parametrize(
    "expression",
    [
        "@daily",
        "@every 2h",
        "0 9 * * 1-5",
        "0 9 * * */2",  # a step over the whole range: the same days in both
        "0 9 * * 1-7/2",
        "0 9 * * 7/2",  # a CronJob refuses 7: it reads no other days
        "0 9 1/2 * *",  # a day-of-month step is read to 31 in both
        "0 9 * * 5L",
        # What a CronJob refuses has no CronJob reading to compare with:
        "0 0 9 * * 1/2",  # six fields
        "0 9 * * 1/2,5L",
        "0 9 L * 1/2",
        "0 9 15W * 1/2",
    ],
)
def test_nothing_to_tell(expression: str) -> None:
    assert cronjob_difference(expression) is None
