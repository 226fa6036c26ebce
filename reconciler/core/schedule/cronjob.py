"""Where a schedule that both read runs on other days under a Kubernetes CronJob.

crontask reads a weekday step ``N/step`` up to 7 (Sunday), the end of its day-of-week range;
a CronJob (robfig/cron) reads it up to 6 (Saturday), so ``1/2`` runs on Sunday here and not
there. Changing what an existing schedule means would move the days of tasks that run now
without a word, so the difference is told instead, where the schedule is read
(``crontask validate``, the log of ``crontask run``, the API's answer to a write), with the two
ways of writing it that both read alike and silence it. A schedule a CronJob refuses (six
fields, Quartz's items) is not told of: there is no CronJob reading to compare with.

The other difference the README names (a stepped ``*/2`` day field counting as restricted in a
CronJob) is not told: what it means here cannot be written any other way, so a warning could not
be silenced.
"""

from __future__ import annotations

import re

from .errors import ScheduleError
from .fields import WEEKDAY_NAMES, weekdays_of

_STEP_FROM = re.compile(r"([0-9]+|[A-Za-z]+)/([0-9]+)")  # "1/2", "MON/2": no range, no "*"
_DAY = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def cronjob_difference(expression: str) -> str | None:
    """Why ``expression``'s days differ from a CronJob's reading of it, or None if they do not
    (or it is not a cron expression). ``expression`` is one that parses."""
    words = expression.split()
    if len(words) != 5:  # a macro, @every, or six fields, which a CronJob refuses
        return None
    field = words[-1]
    if _quartz(words[2], "LW#") or _quartz(field, "L#"):  # a CronJob refuses these as well
        return None
    items = field.split(",")
    there = [_to_saturday(item) for item in items]
    if there == items:
        return None
    try:
        here_days, there_days = weekdays_of(field), weekdays_of(",".join(there))
    except ScheduleError:  # "7/2": a CronJob refuses the field, it reads no other days
        return None
    if here_days == there_days:
        return None
    # The one day that differs is Sunday, 7, which a CronJob's range stops before: named as 0,
    # it is Sunday in both.
    cronjobs = ",".join(there)
    return (
        f"day-of-week {field!r} runs to Sunday here ({_days(here_days)}) and to Saturday in a "
        f"Kubernetes CronJob ({_days(there_days)}): write {cronjobs + ',0'!r} for these days "
        f"or {cronjobs!r} for the CronJob's, which both read alike"
    )


def _to_saturday(item: str) -> str:
    """``item`` with a step from a single weekday written as the range a CronJob reads."""
    if (match := _STEP_FROM.fullmatch(item)) is None:
        return item
    start, step = match.groups()
    if start.lower() in WEEKDAY_NAMES:
        start = start.upper()
    return f"{start}-6/{step}"


def _quartz(field: str, marks: str) -> bool:
    """Whether a day field holds one of Quartz's calendar items (``L``, ``15W``, ``1#2``):
    no weekday name holds an L, and the day of the month has no names."""
    return any(mark in field.upper() for mark in marks)


def _days(days: frozenset[int]) -> str:
    return ", ".join(_DAY[day] for day in sorted(days, key=lambda d: (d - 1) % 7))
