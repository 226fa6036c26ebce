"""Schedules in plain English, for ``crontask describe``/status output and error hints.

Descriptions are derived from the *values* a field selects, not from its spelling, so ``*/15``,
``0-59/15`` and ``0,15,30,45`` all read "every 15 minutes".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .fields import CronSpec

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# Weeks are read Monday first, so that {Fri, Sat, Sun} is "Friday through Sunday".
_WEEK_ORDER = (1, 2, 3, 4, 5, 6, 0)

# At most this many distinct times of day are listed ("at 09:00 and 17:00"); more are
# described field by field ("at minute 0 of hours 9 through 17").
_MAX_LISTED_TIMES = 4


def describe_cron(spec: CronSpec) -> str:
    times = _times_of_day(spec)
    words = [times if times is not None else _time_pattern(spec)]
    # One date a year: only when the day of the week does not count. A day-of-week field
    # that lists all seven days without `*` (`sun-sat`, `0-6`) makes either field enough, so
    # every day of the month runs ("on February 1" was said of 28 runs a year).
    if (
        len(spec.days) == 1
        and not spec.dom_specials
        and len(spec.months) == 1
        and _every_weekday(spec)
        and spec.days_and
    ):
        words.append(f"on {MONTHS[spec.months[0] - 1]} {spec.days[0]}")
        return " ".join(words)
    days = _days(spec)
    if times is not None and not days:
        words.append("every day")
    words.extend(part for part in (days, _months(spec)) if part)
    return " ".join(words)


def describe_every(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds == size:
            return f"every {unit}"
    return f"every {duration(seconds)}"


def describe_offset(seconds: int) -> str:
    return f", delayed by {duration(seconds)}" if seconds else ""


def duration(seconds: int) -> str:
    """``5400`` -> ``"1 hour 30 minutes"``."""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    # Whole days read better as days only from 2 on ("every 48 hours" is also fine, but
    # "every 2 days" is what people say); a single day stays "24 hours".
    if days < 2:
        hours, days = hours + 24 * days, 0
    parts = [
        _plural(value, unit)
        for value, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"), (secs, "second"))
        if value
    ]
    return " ".join(parts) if parts else "0 seconds"


def _plural(value: int, unit: str) -> str:
    return f"{value} {unit}" if value == 1 else f"{value} {unit}s"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _join(items: Sequence[str], conjunction: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs in ``values`` (already in the order to read them)."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _list(values: Sequence[int], name: Callable[[int], str] = str) -> str:
    """``[1, 2, 3, 5]`` -> ``"1 through 3 and 5"``; runs of two are listed as two items."""
    items: list[str] = []
    for first, last in _runs(values):
        if last - first >= 2:
            items.append(f"{name(first)} through {name(last)}")
        else:
            items.extend(name(value) for value in range(first, last + 1))
    return _join(items)


def _step(values: Sequence[int], low: int, high: int, *, wraps: bool = True) -> int | None:
    """``n`` when ``values`` is exactly ``low, low+n, ...`` up to ``high`` (n >= 2), else None.
    When the unit ``wraps`` (seconds, minutes, hours), only a step that divides the range:
    ``*/40`` fires at minutes 0 and 40, 20 minutes apart across the hour, not "every 40"."""
    if len(values) < 2 or values[0] != low:
        return None
    step = values[1] - values[0]
    if step < 2 or list(values) != list(range(low, high + 1, step)):
        return None
    if wraps and (high + 1 - low) % step:
        return None
    return step


def _times_of_day(spec: CronSpec) -> str | None:
    """A list such as "at 09:00 and 17:00" when it fires at a few fixed times of day."""
    count = len(spec.hours) * len(spec.minutes) * len(spec.seconds)
    if count > _MAX_LISTED_TIMES or len(spec.hours) == 24:
        return None
    with_seconds = spec.seconds != (0,)
    times = [
        f"{hour:02d}:{minute:02d}" + (f":{second:02d}" if with_seconds else "")
        for hour in spec.hours
        for minute in spec.minutes
        for second in spec.seconds
    ]
    return "at " + _join(times)


def _time_pattern(spec: CronSpec) -> str:
    """Field by field, smallest unit first: "every 15 minutes during hours 9 through 17"."""
    units: list[tuple[str, tuple[int, ...], int]] = []
    if spec.seconds != (0,):
        units.append(("second", spec.seconds, 59))
    units += [("minute", spec.minutes, 59), ("hour", spec.hours, 23)]
    # Larger units that allow everything add at most "of every <unit>" ("every 15 minutes",
    # not "every 15 minutes of every hour of every day").
    popped = ""
    while len(units) > 1 and len(units[-1][1]) == units[-1][2] + 1:
        popped = units.pop()[0]
    unit, values, high = units[0]
    step = _step(values, 0, high)
    if len(values) == high + 1:
        words, specific = [f"every {unit}"], False
    elif step is not None:
        words, specific = [f"every {step} {unit}s"], False
    elif len(values) == 1:
        words, specific = [f"at {unit} {values[0]}"], True
    else:
        words, specific = [f"at {unit}s {_list(values)}"], True
    every = not specific
    for unit, values, high in units[1:]:
        step = _step(values, 0, high)
        if len(values) == high + 1:
            if specific:
                words.append(f"of every {unit}")
                specific = False
            continue
        if step is not None:
            scope, specific = f"every {_ordinal(step)} {unit}", False
        elif len(values) == 1:
            scope, specific = f"{unit} {values[0]}", True
        else:
            scope, specific = f"{unit}s {_list(values)}", True
        words.append(f"during {scope}" if every else f"of {scope}")
    if popped and specific:
        words.append(f"of every {popped}")
    return " ".join(words)


def _weekday_list(weekdays: Sequence[int]) -> str:
    ordered = [day for day in _WEEK_ORDER if day in weekdays]
    # Runs are found on positions in the Monday-first week, then named.
    positions = [_WEEK_ORDER.index(day) for day in ordered]
    return _list(positions, lambda position: WEEKDAYS[_WEEK_ORDER[position]])


def _every_date(spec: CronSpec) -> bool:
    """Whether the day-of-month field selects every day by itself (its L/W items add nothing)."""
    return len(spec.days) == 31


def _every_weekday(spec: CronSpec) -> bool:
    """Whether the day-of-week field selects every day by itself (its L/# items add nothing)."""
    return len(spec.weekdays) == 7


def _days(spec: CronSpec) -> str:
    """The days it runs on, or "" for every day."""
    every_date, every_weekday = _every_date(spec), _every_weekday(spec)
    if spec.days_and:
        if every_date and every_weekday:
            return ""
        if every_date:
            return _weekdays_phrase(spec)
        if every_weekday:
            return _dates_phrase(spec)
        return f"{_dates_phrase(spec)} if it is {_weekdays_condition(spec)}"
    # Either field may match: one that selects every day makes the other irrelevant.
    if every_date or every_weekday:
        return ""
    return f"{_dates_phrase(spec)} or {_weekdays_phrase(spec)}"


def _dates_phrase(spec: CronSpec) -> str:
    """The day-of-month field: "on day 1 of the month", "on the last weekday of the month"."""
    items: list[str] = []
    step = _step(spec.days, 1, 31, wraps=False)  # "of the month" says where it starts
    if step is not None:
        items.append(f"every {_ordinal(step)} day")
    elif len(spec.days) == 1:
        items.append(f"day {spec.days[0]}")
    elif spec.days and not spec.dom_specials:
        items.append(f"days {_list(spec.days)}")
    elif spec.days:
        # Beside L and W items, each run of days is an item: "day 1, day 15 and the last day".
        for first, last in _runs(spec.days):
            if last - first >= 2:
                items.append(f"days {first} through {last}")
            else:
                items.extend(f"day {day}" for day in range(first, last + 1))
    items += [f"the weekday nearest day {day}" for day in spec.dom_nearest]
    items += [_from_last(back) for back in reversed(spec.dom_last)]
    if spec.dom_last_weekday:
        items.append("the last weekday")
    return f"on {_join(items)} of the month"


def _from_last(back: int) -> str:
    if back == 0:
        return "the last day"
    if back == 1:
        return "the day before the last day"
    return f"the day {back} days before the last day"


_NTH = ("first", "second", "third", "fourth", "fifth")


def _special_weekdays(spec: CronSpec) -> list[str]:
    """The L and # items of the day-of-week field: "the last Friday", "the second Monday".

    An item for a weekday that the field selects anyway ("FRI,FRIL") adds nothing and is left out.
    """
    plain = spec.weekdays
    items = [
        f"the {_NTH[nth - 1]} {WEEKDAYS[day]}"
        for day, nth in _week_sorted(spec.dow_nth)
        if day not in plain
    ]
    items += [
        f"the last {WEEKDAYS[day]}"
        for day in _WEEK_ORDER
        if day in spec.dow_last and day not in plain
    ]
    return items


def _week_sorted(nths: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted(nths, key=lambda item: (item[1], _WEEK_ORDER.index(item[0])))


def _weekdays_phrase(spec: CronSpec) -> str:
    """The day-of-week field: "on Monday through Friday", "on the last Sunday of the month"."""
    items = [_weekday_list(spec.weekdays)] if spec.weekdays else []
    specials = _special_weekdays(spec)
    return f"on {_join(items + specials)}" + (" of the month" if specials else "")


def _weekdays_condition(spec: CronSpec) -> str:
    """The day-of-week field as a condition: "a Monday or Friday", "the last Friday"."""
    names = [WEEKDAYS[day] for day in _WEEK_ORDER if day in spec.weekdays]
    specials = _special_weekdays(spec)
    article = "a " if names else ""
    return article + _join(names + specials, "or") + (" of the month" if specials else "")


def _months(spec: CronSpec) -> str:
    if len(spec.months) == 12:
        return ""
    return f"in {_list(spec.months, lambda month: MONTHS[month - 1])}"
