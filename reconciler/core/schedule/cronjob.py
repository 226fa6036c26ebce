"""Where a schedule that both read runs on other days under a Kubernetes CronJob.

Two differences are told:

- crontask reads a weekday step ``N/step`` up to 7 (Sunday), the end of its day-of-week range;
  a CronJob (robfig/cron) reads it up to 6 (Saturday), so ``1/2`` runs on Sunday here and not
  there.
- A day field with ``*`` as a later item (``1,*``, ``MON,*/1``): here a day field is
  unrestricted only when it *starts* with ``*`` (Vixie cron's rule), so with both day fields
  restricted a day matching either runs, which with a field of every day is every day; a
  CronJob counts a ``*`` item anywhere in the field, and a day must then match both, so it runs
  on the other field's days only. (``?`` is refused here anywhere but as a whole field.)

Changing what an existing schedule means would move the days of tasks that run now without a
word, so the difference is told instead, where the schedule is read (``crontask validate``, the
log of ``crontask run``, the API's answer to a write), with the two ways of writing it that both
read alike and silence it. A schedule a CronJob refuses (six fields, Quartz's items, weekday 7
or ``fri-sun``, past its Saturday) is not told of: there is no CronJob reading to compare with.

The other difference the README names (a stepped ``*/2`` day field counting as restricted in a
CronJob) is not told: what it means here cannot be written any other way, so a warning could not
be silenced.
"""

from __future__ import annotations

import re

from .errors import ScheduleError
from .fields import WEEKDAY_NAMES, CronSpec, parse_cron, weekdays_of

_STEP_FROM = re.compile(r"([0-9]+|[A-Za-z]+)/([0-9]+)")  # "1/2", "MON/2": no range, no "*"
_LONGEST = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # each month's days in a leap year
_DAY = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def cronjob_difference(expression: str) -> str | None:
    """Why ``expression``'s days differ from a CronJob's reading of it, or None if they do not
    (or it is not a cron expression). ``expression`` is one that parses."""
    words = expression.split()
    if len(words) != 5:  # a macro, @every, or six fields, which a CronJob refuses
        return None
    if _quartz(words[2], "LW#") or _quartz(words[-1], "L#"):  # a CronJob refuses these as well
        return None
    # A warning, read in the middle of a pass, a validate and an API write: a field it cannot
    # read (a "?" raised here once, and stopped the pass after the task's step) is no
    # difference to tell, never an error of its own.
    try:
        if _past_saturday(words[-1]):  # and 7, and "fri-sun"
            return None
        told = [why for why in (_weekday_step(words[-1]), _late_star(expression, words)) if why]
    except (ValueError, ScheduleError):
        return None
    return "; also, ".join(told) or None


def _weekday_step(field: str) -> str | None:
    """The difference of a weekday step ``N/step``, which a CronJob reads to Saturday."""
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


def _late_star(expression: str, words: list[str]) -> str | None:
    """The difference of a day field with ``*`` as a later item, which a CronJob counts as a
    star: here it runs every day (either field matches, and this one has every day), there
    only on the other field's days. None where those are every day too."""
    dom, dow = words[2], words[4]
    for name, field, other_name, other, every_day in (
        ("day-of-month", dom, "day-of-week", dow, "1-31"),
        ("day-of-week", dow, "day-of-month", dom, "0-6"),
    ):
        if field.startswith("*") or not any(_is_star(item) for item in field.split(",")[1:]):
            continue
        if other.startswith(("*", "?")) or _every_day(other_name, parse_cron(expression)):
            continue  # a day must match both here as well, or the other field has every day
        return (
            f"{name} {field!r} has '*' after its first item: here a day field is unrestricted "
            "only when it starts with '*' (as in Vixie cron), so a day matching either field "
            "runs, which is every day; a Kubernetes CronJob counts a '*' anywhere, and runs "
            f"only on the days of {other_name} {other!r}: write '*' for the CronJob's days or "
            f"{every_day!r} for these, which both read alike"
        )
    return None


def _past_saturday(field: str) -> bool:
    """Whether a CronJob refuses the day-of-week ``field`` for a weekday past its 6, Saturday:
    the number 7, or a range ending at ``sun`` (its 0) from a later day, which here is 7. A
    step is no weekday."""
    for item in field.split(","):
        span = item.partition("/")[0].lower()
        if span in ("*", "?"):  # "?": every day, in a CronJob as here
            continue
        ends = [
            WEEKDAY_NAMES.index(end) if end in WEEKDAY_NAMES else int(end)
            for end in span.split("-")
            if end in WEEKDAY_NAMES or end.isdigit()
        ]
        if max(ends) > 6 or ends != sorted(ends):
            return True
    return False


def _is_star(item: str) -> bool:
    """Whether a CronJob marks a field with ``item`` unrestricted: ``*``, or ``*`` stepped by 1
    (a longer step clears the mark). The expression parses, so a step is a number."""
    span, slash, step = item.partition("/")
    return span == "*" and (not slash or int(step) == 1)


def _every_day(field: str, spec: CronSpec) -> bool:
    """Whether the day field named ``field`` selects every day of the months ``spec`` runs in."""
    if field == "day-of-week":
        return len(spec.weekdays) == 7
    longest = max(_LONGEST[month - 1] for month in spec.months)
    return set(range(1, longest + 1)) <= set(spec.days)


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
