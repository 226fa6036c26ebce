"""Parsing the fields of a cron expression into sets of values.

Grammar of one field (Vixie cron, as in ``man 5 crontab``)::

    field := item ("," item)*
    item  := range ("/" step)?
    range := "*" | value | value "-" value
    value := number | name            (names: jan..dec in the month field, sun..sat in day-of-week)

``a/n`` means ``a-MAX/n``. Day-of-week accepts 0-7, where both 0 and 7 are Sunday. The name
``sun`` ending a range that starts after Sunday is 7 (``fri-sun`` is Friday to Sunday); ending
one that starts at Sunday it is 0, so ``sun-sun`` and ``0-sun`` are Sunday alone, as in a
Kubernetes CronJob and Vixie cron (crontask 0.4.0 and older read them as 0-7, every day).

The day fields also take the extensions of Quartz (see :mod:`.days` for their meaning):
``L``, ``L-N``, ``NW`` and ``LW`` as day-of-month items, ``dL`` and ``d#n`` in day-of-week (with
this project's POSIX numbering, not Quartz's), and ``?`` as a whole day field, meaning the same
as ``*``. A ``#`` item must be the only item of its field, as in Quartz. Anything else that
looks like one of them is refused with a message saying what is allowed where.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import NoReturn

from . import days as day_rules
from .errors import ScheduleError

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


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
MAX_FROM_LAST = 30  # "L-30" is the largest offset (as in Quartz): day 1 of a 31-day month
MAX_NTH = 5  # "#5": no month has a sixth Monday

# What the day fields allow, for messages.
_DOM_SPECIALS = "L (the last day), L-3, 15W (the weekday nearest the 15th) and LW"
_DOW_SPECIALS = "5L or FRIL (the last Friday of the month) and 1#2 or MON#2 (the second Monday)"


@dataclasses.dataclass(frozen=True, slots=True)
class CronSpec:
    """The meaning of a cron expression: the allowed values of every field, sorted.

    ``dom_star``/``dow_star`` record whether the day fields *start with* ``*`` or are ``?``
    (Vixie's rule for combining them), ``hour_star`` whether the hour field starts with ``*``
    (the DST rule). ``days``/``weekdays`` are the plain values of the day fields; the ``dom_*``
    and ``dow_*`` tuples are their Quartz items, whose days depend on the month (:mod:`.days`).
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
    dom_last: tuple[int, ...] = ()  # "L" is 0, "L-3" is 3
    dom_nearest: tuple[int, ...] = ()  # "15W" is 15
    dom_last_weekday: bool = False  # "LW"
    dow_last: tuple[int, ...] = ()  # "5L" is 5 (the last Friday); Sunday is 0
    dow_nth: tuple[tuple[int, int], ...] = ()  # "1#2" is (1, 2): (weekday, n)
    # The matching days of each month shape (:func:`.days.month_days`), filled in by the day
    # search when first needed. It lives here, not in each schedule, so that every schedule
    # built from one parsed expression (parsing is memoised) shares it: the first fire in a
    # new kind of month computes it once, not once per task. Not part of the value.
    by_shape: list[tuple[int, ...] | None] = dataclasses.field(
        default_factory=lambda: [None] * 28, compare=False, repr=False
    )

    @property
    def days_and(self) -> bool:
        """True when a day must match both day fields (either starts with ``*``), else either."""
        return self.dom_star or self.dow_star

    @property
    def dom_specials(self) -> bool:
        """Whether the day-of-month field has an ``L`` or ``W`` item."""
        return bool(self.dom_last or self.dom_nearest or self.dom_last_weekday)

    @property
    def dow_specials(self) -> bool:
        """Whether the day-of-week field has an ``L`` or ``#`` item."""
        return bool(self.dow_last or self.dow_nth)


@dataclasses.dataclass(slots=True)
class _Values:
    """What one field's items add up to."""

    plain: set[int] = dataclasses.field(default_factory=set)
    last: set[int] = dataclasses.field(default_factory=set)  # dom: L-N offsets; dow: weekdays
    nearest: set[int] = dataclasses.field(default_factory=set)  # dom: NW days
    last_weekday: bool = False  # dom: LW
    nth: set[tuple[int, int]] = dataclasses.field(default_factory=set)  # dow: (weekday, n)


def parse_cron(expression: str, first_column: int = 0) -> CronSpec:
    """Parse a 5- or 6-field cron expression.

    Columns in errors are offsets into ``expression`` plus ``first_column`` (for expressions
    that are part of a larger string, such as macro expansions, pass the macro's column); they
    point at the offending item of a field.
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
        field.name: _field_values(text, field, column)
        for field, (text, column) in zip(fields, words, strict=True)
    }
    texts = {field.name: text for field, (text, _) in zip(fields, words, strict=True)}
    columns = {field.name: column for field, (_, column) in zip(fields, words, strict=True)}
    dom, dow = values[DAY_OF_MONTH.name], values[DAY_OF_WEEK.name]
    spec = CronSpec(
        seconds=tuple(sorted(values[SECOND.name].plain if SECOND.name in values else {0})),
        minutes=tuple(sorted(values[MINUTE.name].plain)),
        hours=tuple(sorted(values[HOUR.name].plain)),
        days=tuple(sorted(dom.plain)),
        months=tuple(sorted(values[MONTH.name].plain)),
        # Sunday is both 0 and 7; keep 0 only so that weekday lookups need one index per day.
        weekdays=tuple(sorted({_sunday_is_0(day) for day in dow.plain})),
        dom_star=texts[DAY_OF_MONTH.name].startswith(("*", "?")),
        dow_star=texts[DAY_OF_WEEK.name].startswith(("*", "?")),
        hour_star=texts[HOUR.name].startswith("*"),
        has_seconds=len(words) == 6,
        dom_last=tuple(sorted(dom.last)),
        dom_nearest=tuple(sorted(dom.nearest)),
        dom_last_weekday=dom.last_weekday,
        dow_last=tuple(sorted({_sunday_is_0(day) for day in dow.last})),
        dow_nth=tuple(sorted({(_sunday_is_0(day), nth) for day, nth in dow.nth})),
    )
    _check_fires(spec, texts, columns[DAY_OF_MONTH.name])
    return spec


def weekdays_of(text: str) -> frozenset[int]:
    """The plain weekdays a day-of-week field names, Sunday as 0 (raises :class:`ScheduleError`)."""
    return frozenset(_sunday_is_0(day) for day in _known_field(text, DAY_OF_WEEK).plain)


def _sunday_is_0(weekday: int) -> int:
    return 0 if weekday == 7 else weekday


def _check_fires(spec: CronSpec, texts: dict[str, str], column: int) -> None:
    """Refuse expressions whose day fields select no day in any month they allow, ever."""
    if day_rules.can_fire(spec):
        return
    dom, dow, month = texts[DAY_OF_MONTH.name], texts[DAY_OF_WEEK.name], texts[MONTH.name]
    if spec.dow_star and len(spec.weekdays) == 7:
        # Only the day-of-month field restricts: the days it names are too late in the month.
        raise ScheduleError(
            f"never fires: day-of-month {dom} does not occur in month {month}", column
        )
    in_months = "" if len(spec.months) == 12 else f" in month {month}"
    raise ScheduleError(
        f"never fires: no day is both day-of-month {dom} and day-of-week {dow}{in_months}", column
    )


def _field_values(text: str, field: _Field, column: int) -> _Values:
    """A field's values, from a cache of the fields seen: tasks share their fields far more
    than their whole expressions (100 000 tasks spread over the hours and minutes of the year
    have as many expressions but a few hundred distinct fields), so a pass that meets more
    expressions than ``_parse_cron``'s cache holds still parses each field once. The values
    are read, never changed, by ``parse_cron``. A field in error is parsed again at its
    column, for the message."""
    try:
        return _known_field(text, field)
    except ScheduleError:
        return _parse_field(text, field, column)


@functools.lru_cache(maxsize=4096)
def _known_field(text: str, field: _Field) -> _Values:
    return _parse_field(text, field, 0)


def _parse_field(text: str, field: _Field, column: int) -> _Values:
    values = _Values()
    if text == "?":
        if field not in (DAY_OF_MONTH, DAY_OF_WEEK):
            raise ScheduleError(
                "'?' is allowed only in the day-of-month and day-of-week fields (where it means "
                f"the same as '*'); use '*' in the {field.name} field",
                column,
            )
        values.plain.update(range(field.low, field.high + 1))
        return values
    items = text.split(",")
    offset = 0
    for item in items:
        where = column + offset
        offset += len(item) + 1
        if not item:
            raise ScheduleError(f"{field.name} field: empty list item in {text!r}", where)
        if field in (DAY_OF_MONTH, DAY_OF_WEEK) and not item.isascii():
            # Their items are read upper-cased (L, W, names), and case folding of other
            # characters makes letters: "5\ufb02".upper() is "5FL", which was read as 5L.
            raise ScheduleError(
                f"{field.name} field: {item!r} holds a character that is not ASCII", where
            )
        if "?" in item:
            raise ScheduleError(
                f"{field.name} field: '?' must be the whole field (it means the same as '*')"
                if field in (DAY_OF_MONTH, DAY_OF_WEEK)
                else "'?' is allowed only in the day-of-month and day-of-week fields (where it "
                f"means the same as '*'); use '*' in the {field.name} field",
                where,
            )
        if field is DAY_OF_MONTH:
            _day_of_month_item(item, values, where)
        elif field is DAY_OF_WEEK:
            _day_of_week_item(item, values, where, alone=len(items) == 1)
        else:
            if "#" in item:
                _refuse_hash(field, where)
            values.plain.update(_plain_item(item, field, where))
    return values


def _plain_item(item: str, field: _Field, column: int) -> range:
    """A plain item; one that fails and looks like a Quartz day item gets a message saying where
    such items belong (rather than "not a number")."""
    try:
        return _parse_item(item, field, column)
    except ScheduleError:
        upper = item.upper()
        if "W" in upper and field is not DAY_OF_MONTH:
            raise ScheduleError(
                f"{field.name} field: 'W' is allowed only in the day-of-month field, as in "
                f"{_DOM_SPECIALS}",
                column,
            ) from None
        if "L" in upper and field is DAY_OF_WEEK:
            raise ScheduleError(
                f"{field.name} field: {item!r} is not valid; besides numbers, names, ranges, "
                f"lists and steps, the day-of-week field takes {_DOW_SPECIALS}",
                column,
            ) from None
        if "L" in upper and field is not DAY_OF_MONTH:
            raise ScheduleError(
                f"{field.name} field: 'L' is allowed only in the day-of-month field (L, L-3, "
                "LW) and in the day-of-week field (5L, FRIL: the last Friday of the month)",
                column,
            ) from None
        raise


def _refuse_hash(field: _Field, column: int) -> NoReturn:
    raise ScheduleError(
        f"{field.name} field: '#' is allowed only in the day-of-week field, as in {_DOW_SPECIALS}",
        column,
    )


def _day_of_month_item(item: str, values: _Values, column: int) -> None:
    upper = item.upper()
    if "#" in item:
        _refuse_hash(DAY_OF_MONTH, column)
    if upper == "L":
        values.last.add(0)
    elif upper == "LW":
        values.last_weekday = True
    elif upper.startswith("L-"):
        values.last.add(_from_last(item, column))
    elif upper.endswith("W"):
        values.nearest.add(_nearest(item, column))
    elif "L" in upper:
        hint = (
            f"; {item} (a last weekday of the month) belongs in the day-of-week field"
            if upper.endswith("L") and _is_weekday(item[:-1])
            else ""
        )
        raise ScheduleError(
            f"day-of-month field: {item!r} is not valid; besides numbers, ranges, lists and "
            f"steps, the day-of-month field takes {_DOM_SPECIALS}{hint}",
            column,
        )
    else:
        values.plain.update(_parse_item(item, DAY_OF_MONTH, column))


def _from_last(item: str, column: int) -> int:
    text = item[2:]
    if not _is_number(text):
        raise ScheduleError(
            f"day-of-month field: {item!r} is not valid; L-N takes a number of days, e.g. L-3 "
            "(3 days before the last day)",
            column,
        )
    if len(text) > _MAX_DIGITS or int(text) > MAX_FROM_LAST:
        raise ScheduleError(
            f"day-of-month field: offset {_show_number(text)} in {item!r} is out of range "
            f"0-{MAX_FROM_LAST}",
            column,
        )
    return int(text)


def _nearest(item: str, column: int) -> int:
    text = item[:-1]
    if not text:
        raise ScheduleError(
            "day-of-month field: 'W' needs a day before it, e.g. 15W (the weekday nearest the "
            "15th) or LW (the last weekday)",
            column,
        )
    if any(char in text for char in "*-/"):
        raise ScheduleError(
            f"day-of-month field: 'W' takes a single day (1W-31W) or LW, not a range or a step; "
            f"got {item!r}",
            column,
        )
    if not _is_number(text):
        raise ScheduleError(f"day-of-month field: {text!r} in {item!r} is not a number", column)
    if len(text) > _MAX_DIGITS or not 1 <= int(text) <= DAY_OF_MONTH.high:
        raise ScheduleError(
            f"day-of-month field: {_show_number(text)} in {item!r} is out of range 1-31; 'W' "
            "takes a single day (1W-31W) or LW",
            column,
        )
    return int(text)


def _day_of_week_item(item: str, values: _Values, column: int, *, alone: bool) -> None:
    upper = item.upper()
    if "#" in item:
        if not alone:
            raise ScheduleError(
                "day-of-week field: '#' must be the only item of the field (e.g. MON#2); lists "
                "with '#' are not supported",
                column,
            )
        values.nth.add(_nth(item, column))
    elif upper == "L":
        raise ScheduleError(
            "day-of-week field: 'L' needs a weekday before it, e.g. 5L or FRIL (the last "
            "Friday of the month); the last day of the month is L in the day-of-month field",
            column,
        )
    elif upper.endswith("L") and upper != "LW" and not upper.startswith("L-"):
        # No weekday name ends in "l", so this is always "<weekday>L".
        values.last.add(_single_weekday(item[:-1], item, "L", column))
    else:
        values.plain.update(_plain_item(item, DAY_OF_WEEK, column))


def _nth(item: str, column: int) -> tuple[int, int]:
    weekday_text, _, nth_text = item.partition("#")
    weekday = _single_weekday(weekday_text, item, "#", column)
    if not _is_number(nth_text):
        raise ScheduleError(
            f"day-of-week field: {item!r} is not valid; '#' is followed by 1-{MAX_NTH}, as in "
            "MON#2 (the second Monday of the month)",
            column,
        )
    if len(nth_text) > _MAX_DIGITS or not 1 <= int(nth_text) <= MAX_NTH:
        raise ScheduleError(
            f"day-of-week field: {_show_number(nth_text)} in {item!r} is out of range "
            f"1-{MAX_NTH} (MON#2 is the second Monday of the month)",
            column,
        )
    return weekday, int(nth_text)


def _single_weekday(text: str, item: str, suffix: str, column: int) -> int:
    if not text:
        raise ScheduleError(
            f"day-of-week field: '{suffix}' needs a weekday before it (0-7 or sun-sat); got "
            f"{item!r}",
            column,
        )
    if any(char in text for char in "*-/,"):
        raise ScheduleError(
            f"day-of-week field: '{suffix}' takes a single weekday (0-7 or sun-sat), not a "
            f"range or a step; got {item!r}",
            column,
        )
    return _parse_value(text, DAY_OF_WEEK, column)


def _is_weekday(text: str) -> bool:
    if _is_number(text):
        return len(text) <= _MAX_DIGITS and int(text) <= DAY_OF_WEEK.high
    return text.lower() in WEEKDAY_NAMES


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
    first = _parse_value(first_text, field, column)
    if not dash:
        # "a/n" is "a-MAX/n"; a bare "a" is just a.
        return range(first, (field.high if slash else first) + 1, step)
    last = _parse_value(last_text, field, column, range_start=first)
    if first > last:
        raise ScheduleError(f"{where}: range {span} is reversed (start after end)", column)
    return range(first, last + 1, step)


def _parse_value(text: str, field: _Field, column: int, *, range_start: int | None = None) -> int:
    """A number or name; ``range_start`` is the value that starts the range ``text`` ends."""
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
        # "fri-sun" means Friday through Sunday: ending a range that starts after Sunday,
        # Sunday is 7. "sun-sun" and "0-sun" stay 0-0, Sunday alone, as a CronJob reads them
        # (its "sun" is always 0) rather than 0-7, every day.
        if field is DAY_OF_WEEK and value == 0 and range_start:
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
