"""Parsing the fields of a cron expression into sets of values.

Grammar of one field (Vixie cron, as in ``man 5 crontab``)::

    field := item ("," item)*
    item  := range ("/" step)?
    range := "*" | value | value "-" value
    value := number | name            (names: jan..dec in the month field, sun..sat in day-of-week)

``a/n`` means ``a-MAX/n``. Day-of-week accepts 0-7, where both 0 and 7 are Sunday. Quartz
extensions (``L``, ``W``, ``#``, ``?``) are refused with a message saying so, rather than as
garbage, because users copy them from Quartz/Spring documentation.
"""

from __future__ import annotations

import dataclasses
import re

from .errors import ScheduleError

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# The longest day each month can have (February counts its leap day): used to reject
# expressions that can never fire, e.g. "0 0 30 2 *".
MAX_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i
    name_hint: str = ""


SECOND = _Field("second", 0, 59)
MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
DAY_OF_MONTH = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, MONTH_NAMES, "jan-dec")
DAY_OF_WEEK = _Field("day-of-week", 0, 7, WEEKDAY_NAMES, "sun-sat")

_FIVE = (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)
_SIX = (SECOND, *_FIVE)

_MAX_DIGITS = 6  # longer numbers are out of range in every field; also keeps int() cheap
_QUARTZ_L = re.compile(r"[0-9]*L|L-[0-9]+|LW", re.IGNORECASE)
_QUARTZ_W = re.compile(r"[0-9]+W", re.IGNORECASE)


@dataclasses.dataclass(frozen=True, slots=True)
class CronSpec:
    """The meaning of a cron expression: the allowed values of every field, sorted.

    ``dom_star``/``dow_star`` record whether the day fields *start with* ``*`` (Vixie's rule
    for combining them), ``hour_star`` whether the hour field does (the DST rule).
    """

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]  # day of month, 1-31
    months: tuple[int, ...]  # 1-12
    weekdays: tuple[int, ...]  # 0-6, Sunday is 0
    dom_star: bool
    dow_star: bool
    hour_star: bool
    has_seconds: bool

    @property
    def days_and(self) -> bool:
        """True when a day must match both day fields (either starts with ``*``), else either."""
        return self.dom_star or self.dow_star


def parse_cron(expression: str, first_column: int = 0) -> CronSpec:
    """Parse a 5- or 6-field cron expression.

    Columns in errors are offsets into ``expression`` plus ``first_column`` (for expressions
    that are part of a larger string, such as macro expansions, pass the macro's column).
    """
    words = [(m.group(), m.start() + first_column) for m in re.finditer(r"\S+", expression)]
    if len(words) not in (5, 6):
        column = words[6][1] if len(words) > 6 else None
        raise ScheduleError(
            "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading "
            f"second field), got {len(words)}",
            column,
        )
    fields = _SIX if len(words) == 6 else _FIVE
    values = {
        field.name: _parse_field(text, field, column)
        for field, (text, column) in zip(fields, words, strict=True)
    }
    texts = {field.name: text for field, (text, _) in zip(fields, words, strict=True)}
    columns = {field.name: column for field, (_, column) in zip(fields, words, strict=True)}
    # Sunday is both 0 and 7; keep 0 only so that weekday lookups need one index per day.
    weekdays = {0 if day == 7 else day for day in values[DAY_OF_WEEK.name]}
    spec = CronSpec(
        seconds=tuple(sorted(values.get(SECOND.name, {0}))),
        minutes=tuple(sorted(values[MINUTE.name])),
        hours=tuple(sorted(values[HOUR.name])),
        days=tuple(sorted(values[DAY_OF_MONTH.name])),
        months=tuple(sorted(values[MONTH.name])),
        weekdays=tuple(sorted(weekdays)),
        dom_star=texts[DAY_OF_MONTH.name].startswith("*"),
        dow_star=texts[DAY_OF_WEEK.name].startswith("*"),
        hour_star=texts[HOUR.name].startswith("*"),
        has_seconds=len(words) == 6,
    )
    _check_fires(spec, texts, columns[DAY_OF_MONTH.name])
    return spec


def _check_fires(spec: CronSpec, texts: dict[str, str], column: int) -> None:
    """Refuse day-of-month/month combinations that never occur.

    Only the AND case can be empty. A day-of-month field that starts with ``*`` always includes
    day 1, and every weekday falls on day 1 of every month in some year; with both day fields
    restricted (OR) the weekdays alone give days. What remains is a restricted day-of-month with
    a ``*`` day-of-week: it fires iff some listed day exists in some listed month.
    """
    if not spec.dow_star or spec.dom_star:
        return
    if any(day <= MAX_MONTH_DAYS[month - 1] for month in spec.months for day in spec.days):
        return
    raise ScheduleError(
        f"never fires: day-of-month {texts[DAY_OF_MONTH.name]} does not occur in "
        f"month {texts[MONTH.name]}",
        column,
    )


def _parse_field(text: str, field: _Field, column: int) -> set[int]:
    where = f"{field.name} field"
    if "#" in text:
        raise ScheduleError(
            f"'#' is not supported; the {field.name} field takes numbers, names, ranges, lists "
            "and steps (e.g. mon-fri, 1,15, */2)",
            column,
        )
    if "?" in text:
        raise ScheduleError(f"'?' is not supported; use '*' in the {field.name} field", column)
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"{where}: empty list item in {text!r}", column)
        if _QUARTZ_L.fullmatch(item):
            raise ScheduleError(
                f"'L' is not supported; list the {field.name} values explicitly "
                "(numbers, ranges, lists and steps)",
                column,
            )
        if _QUARTZ_W.fullmatch(item):
            raise ScheduleError(
                f"'W' is not supported; list the {field.name} values explicitly "
                "(numbers, ranges, lists and steps)",
                column,
            )
        values.update(_parse_item(item, field, column))
    return values


def _parse_item(item: str, field: _Field, column: int) -> range:
    where = f"{field.name} field"
    span, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _is_number(step_text):
            raise ScheduleError(f"{where}: step {step_text!r} is not a number", column)
        # A step beyond the field's largest value selects only the start, which is never what
        # was meant ("*/90" in minutes is not every 90 minutes): say so.
        if len(step_text) > _MAX_DIGITS or not 1 <= int(step_text) <= field.high:
            raise ScheduleError(
                f"{where}: step {_show_number(step_text)} is out of range 1-{field.high}", column
            )
        step = int(step_text)
    if span == "*":
        return range(field.low, field.high + 1, step)
    first_text, dash, last_text = span.partition("-")
    if "*" in span or not first_text or (dash and (not last_text or "-" in last_text)):
        raise ScheduleError(f"{where}: {item!r} is not a valid range", column)
    first = _parse_value(first_text, field, column, is_range_end=False)
    if not dash:
        # "a/n" is "a-MAX/n"; a bare "a" is just a.
        return range(first, (field.high if slash else first) + 1, step)
    last = _parse_value(last_text, field, column, is_range_end=True)
    if first > last:
        raise ScheduleError(f"{where}: range {span} is reversed (start after end)", column)
    return range(first, last + 1, step)


def _parse_value(text: str, field: _Field, column: int, *, is_range_end: bool) -> int:
    where = f"{field.name} field"
    if _is_number(text):
        if len(text) > _MAX_DIGITS or not field.low <= int(text) <= field.high:
            raise ScheduleError(
                f"{where}: {_show_number(text)} is out of range {field.low}-{field.high}", column
            )
        return int(text)
    lowered = text.lower()
    if lowered in field.names:
        value = field.low + field.names.index(lowered)
        # "fri-sun" means Friday through Sunday: as the end of a range, Sunday is 7.
        if field is DAY_OF_WEEK and value == 0 and is_range_end:
            return 7
        return value
    if field.names:
        raise ScheduleError(
            f"{where}: {text!r} is not a number ({field.low}-{field.high}) or a name "
            f"({field.name_hint})",
            column,
        )
    raise ScheduleError(f"{where}: {text!r} is not a number", column)


def _is_number(text: str) -> bool:
    # str.isdigit alone also accepts non-ASCII digits such as "²".
    return text.isascii() and text.isdigit()


def _show_number(text: str) -> str:
    """A number for a message: without leading zeros, and cut short when absurdly long."""
    if len(text) > _MAX_DIGITS:
        return text[:_MAX_DIGITS] + "..."
    return str(int(text))
