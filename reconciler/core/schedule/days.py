"""Which days of a month the two day fields of a cron expression select.

A month's matching days depend only on its *shape*: how many days it has (28-31) and the
weekday of its 1st. There are 28 shapes, and every one of them occurs in every month that can
have that length (each month starts on each weekday in some year), so a question about all
time ("can this expression ever fire?") is answered by looking at the shapes of its months.

Weekdays are numbered 0-6 with Sunday 0, as in POSIX cron.

Day-of-month items, beyond numbers, ranges and steps:

* ``L``: the last day; ``L-N`` (N 0-30): N days before the last day, and no day at all in a
  month shorter than N+1 days (``L-30`` selects day 1 in 31-day months only);
* ``NW`` (N 1-31): the weekday (Monday to Friday) nearest day N, never in another month: a
  Saturday moves to the Friday before, unless N is the 1st (then the Monday after, the 3rd);
  a Sunday moves to the Monday after, unless N is the last day (then the Friday before). No
  day in a month without day N;
* ``LW``: the last weekday of the month.

Day-of-week items, beyond numbers, names, ranges and steps:

* ``dL``: the last weekday ``d`` of the month (``5L``: the last Friday);
* ``d#n`` (n 1-5): the n-th weekday ``d`` of the month; no day in a month without one.

Combining the fields follows Vixie cron: when either field starts with ``*`` (or is ``?``), a
day must match both; otherwise either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .fields import CronSpec

SATURDAY = 6
SUNDAY = 0

# The lengths each month can have; February has its leap day in some years.
MONTH_LENGTHS = (
    (31,),
    (28, 29),
    (31,),
    (30,),
    (31,),
    (30,),
    (31,),
    (31,),
    (30,),
    (31,),
    (30,),
    (31,),
)


def weekday(day: int, first_weekday: int) -> int:
    """The weekday (0 is Sunday) of ``day`` in a month whose 1st is ``first_weekday``."""
    return (first_weekday + day - 1) % 7


def nearest_weekday(day: int, length: int, first_weekday: int) -> int:
    """The Monday-to-Friday day of the same month nearest ``day`` (``NW``; ``LW`` is ``length``)."""
    current = weekday(day, first_weekday)
    if current == SATURDAY:
        return day - 1 if day > 1 else day + 2
    if current == SUNDAY:
        return day + 1 if day < length else day - 2
    return day


def month_days(spec: CronSpec, length: int, first_weekday: int) -> tuple[int, ...]:
    """The days (1-``length``, in order) of a month of that shape that ``spec`` selects."""
    # A field whose plain values are every day makes its L/W/# items redundant; the shortcuts
    # keep the common expressions ("*", a few days, a few weekdays) cheap to tabulate.
    every_date, every_weekday = len(spec.days) == 31, len(spec.weekdays) == 7
    if every_date and every_weekday:
        return tuple(range(1, length + 1))
    if spec.days_and:
        if every_weekday:
            return tuple(sorted(_by_date(spec, length, first_weekday)))
        if every_date:
            return tuple(sorted(_by_weekday(spec, length, first_weekday)))
        selected = _by_date(spec, length, first_weekday) & _by_weekday(spec, length, first_weekday)
    elif every_date or every_weekday:
        return tuple(range(1, length + 1))
    else:
        selected = _by_date(spec, length, first_weekday) | _by_weekday(spec, length, first_weekday)
    return tuple(sorted(selected))


def _by_date(spec: CronSpec, length: int, first_weekday: int) -> set[int]:
    """The days the day-of-month field selects."""
    selected = {day for day in spec.days if day <= length}
    selected.update(length - back for back in spec.dom_last if back < length)
    selected.update(
        nearest_weekday(day, length, first_weekday) for day in spec.dom_nearest if day <= length
    )
    if spec.dom_last_weekday:
        selected.add(nearest_weekday(length, length, first_weekday))
    return selected


def _by_weekday(spec: CronSpec, length: int, first_weekday: int) -> set[int]:
    """The days the day-of-week field selects."""
    selected = {
        day
        for wanted in spec.weekdays
        for day in range(1 + (wanted - first_weekday) % 7, length + 1, 7)
    }
    last_weekday = weekday(length, first_weekday)
    selected.update(length - (last_weekday - wanted) % 7 for wanted in spec.dow_last)
    for wanted, nth in spec.dow_nth:
        day = 1 + (wanted - first_weekday) % 7 + 7 * (nth - 1)
        if day <= length:
            selected.add(day)
    return selected


def can_fire(spec: CronSpec) -> bool:
    """Whether some day of some month ``spec`` allows is selected, in some year."""
    # Every month has at least 28 days, so each weekday: a date up to the 28th with every
    # weekday allowed, or a weekday with every date allowed, fires whatever the rule joining
    # the two fields. That is most schedules, and spares them the table of month shapes.
    if len(spec.weekdays) == 7 and min(spec.days, default=32) <= 28:
        return True
    if len(spec.days) == 31 and spec.weekdays:
        return True
    lengths = {length for month in spec.months for length in MONTH_LENGTHS[month - 1]}
    return any(month_days(spec, length, first) for length in sorted(lengths) for first in range(7))
