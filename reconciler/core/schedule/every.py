"""``@every <duration>``: fixed intervals aligned to the Unix epoch.

A fire instant is every ``t`` with ``(t - 1970-01-01T00:00:00Z) % interval == 0`` (plus the
schedule's offset). Aligning to the epoch rather than to the start of the process makes the
slots identical across restarts and replicas, and the run id is derived from the slot. The
time zone plays no part in the instants; it only sets how results are expressed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from fractions import Fraction
from typing import NoReturn
from zoneinfo import ZoneInfo

from . import zones
from .base import Schedule
from .describe import describe_every, describe_offset
from .errors import ScheduleError

_UNITS = {"h": 3600, "m": 60, "s": 1}
_SUB_SECOND_UNITS = frozenset({"ms", "us", "µs", "μs", "ns"})  # Go spells micro both ways
# A number of any length (a long one is out of range, one of too many decimals refused, said
# so below: never "missing unit" with the unit there), then its unit.
_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([^0-9.]*)")
_EXAMPLES = "e.g. 30s, 5m, 1h30m"

# The longest interval: a year of 365 days, as long as the longest deadline or timeout a task
# may have. Longer ones are almost certainly mistakes (a digit too many), and one of 10^12 hours
# would be accepted and never fire.
MAX_INTERVAL = 365 * 24 * 3600
_MAX_SHOWN = f"{MAX_INTERVAL // 3600}h"
# A whole number with more digits than the longest interval has in seconds is out of range in
# every unit: it is refused from its length, never converted (a number of a million digits
# would take seconds, and past 4300 int() refuses it).
_MAX_WHOLE_DIGITS = len(str(MAX_INTERVAL))
# Decimal places a number may have (trailing zeros do not count), far more than whole
# seconds need (an hour's number gives whole seconds with 4 at most): more are a typo or a
# hostile text, refused from their length, never converted.
_MAX_DECIMALS = 12

# Instants past this cannot be turned into datetimes in every zone (year 9999 ends there).
_LAST = zones.year_start(zones.MAX_YEAR + 1)


def parse_duration(text: str, column: int | None = None) -> int:
    """A Go-style duration made of ``h``, ``m`` and ``s`` parts (``1h30m``) in whole seconds."""
    if not text:
        raise ScheduleError(f"@every needs a duration ({_EXAMPLES})", column)
    total = Fraction(0)
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise ScheduleError(f"@every: {text!r} is not a duration ({_EXAMPLES})", column)
        number, unit = match.groups()
        if unit in _SUB_SECOND_UNITS:
            raise ScheduleError(
                f"@every: unit {unit!r} is not supported; the shortest interval is 1s", column
            )
        if unit not in _UNITS:
            shown = f"unknown unit {unit!r}" if unit else "missing unit"
            raise ScheduleError(
                f"@every: {shown} in {text!r}; use h, m and s ({_EXAMPLES})", column
            )
        total += _number(number, text, column) * _UNITS[unit]
        position = match.end()
    if total.denominator != 1:
        raise ScheduleError(f"@every: {text!r} is not a whole number of seconds", column)
    if total < 1:
        raise ScheduleError(f"@every: {text!r} is shorter than the minimum of 1s", column)
    if total > MAX_INTERVAL:
        _too_long(text, column)
    return int(total)


def _number(number: str, text: str, column: int | None) -> Fraction:
    """A part's number; leading zeros and trailing decimal zeros do not count (``007s`` is
    7s, ``1.000s`` 1s, as in Go)."""
    whole, _, fraction = number.partition(".")
    whole, fraction = whole.lstrip("0"), fraction.rstrip("0")
    if len(whole) > _MAX_WHOLE_DIGITS:
        _too_long(text, column)
    if len(fraction) > _MAX_DECIMALS:
        raise ScheduleError(
            f"@every: {text!r} has a number of more than {_MAX_DECIMALS} decimal places; "
            f"the interval is a whole number of seconds ({_EXAMPLES})",
            column,
        )
    return Fraction(f"{whole or '0'}.{fraction or '0'}")


def _too_long(text: str, column: int | None) -> NoReturn:
    raise ScheduleError(
        f"@every: {text!r} is longer than a year; the interval must be 1s to {_MAX_SHOWN}",
        column,
    )


class EverySchedule(Schedule):
    """``@every <duration>``: every ``interval`` seconds, aligned to the Unix epoch."""

    __slots__ = ("interval",)

    interval: int  # seconds, 1 to MAX_INTERVAL

    def __init__(self, expression: str, zone: ZoneInfo, interval: int, offset: int = 0) -> None:
        if not 1 <= interval <= MAX_INTERVAL:
            raise ValueError(f"interval must be 1 to {MAX_INTERVAL} seconds, got {interval}")
        super().__init__(expression, zone, offset)
        self.interval = interval

    def describe(self) -> str:
        return describe_every(self.interval) + describe_offset(self.offset)

    def with_offset(self, seconds: int) -> EverySchedule:
        return EverySchedule(self.expression, self.zone, self.interval, self.offset + seconds)

    def _first_slot(self, first: int) -> int:
        """The smallest slot index ``k`` with ``k * interval + offset >= first``."""
        return -((self.offset - first) // self.interval)

    def _fire_seconds(self, first: int) -> Iterator[int]:
        u = self._first_slot(first) * self.interval + self.offset
        while u < _LAST:
            yield u
            u += self.interval

    def count_within(self, after: datetime, until: datetime, budget: int) -> int | None:
        return self.count_between(after, until)[0]  # O(1), whatever the budget: see below

    def count_between(self, after: datetime, until: datetime) -> tuple[int, datetime | None]:
        # O(1): the slots form an arithmetic progression, so count them by division.
        first = zones.first_second_after(after)
        last = min(zones.last_second_at_or_before(until), _LAST - 1)
        first_slot = self._first_slot(first)
        last_slot = (last - self.offset) // self.interval
        if last_slot < first_slot:
            return 0, None
        latest = last_slot * self.interval + self.offset
        return last_slot - first_slot + 1, zones.to_datetime(latest, self.zone)
