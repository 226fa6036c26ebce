"""Cron expressions: matching wall-clock times, and the DST rule of Vixie cron / cronie.

Matching is done on *wall times*: integer seconds since 1970-01-01T00:00 of the local clock, as
if it were UTC (``wall = instant + utc_offset``). The timeline is cut into pieces of constant
UTC offset (:func:`.zones.segments`); inside a piece, instants and wall times correspond one to
one, so the next match is found by searching wall times field by field (month, then day, then
hour, minute, second), never minute by minute.

How a wall time becomes instants depends on the hour field (the rule cron users know):

* *wildcard* schedules (hour field starts with ``*``) follow elapsed time: every instant whose
  local wall time matches fires. A wall time skipped by a spring-forward does not fire; one
  repeated by a fall-back fires at both occurrences.
* *fixed* schedules (any other hour field) fire once per matching wall time: a repeated wall
  time at its first occurrence only; wall times inside a spring-forward gap fire once, together,
  at the instant of the jump (also when a regular slot falls on that same instant).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import date
from zoneinfo import ZoneInfo

from . import days, zones
from .base import Schedule
from .describe import describe_cron, describe_offset
from .fields import CronSpec

# How far ahead a search goes before answering "never again". Parsing rejects expressions with
# no possible day, and which days of a month match depends only on the month's shape (its
# length and the weekday of its 1st; see .days), so this only has to cover the longest gap
# between two months of the same shape: 40 years, for a February 29 on a given weekday across
# 2100 (e.g. "0 0 * 2 0#5" fires in 2032, 2060, 2088 and then 2128). One more year covers a
# local date that is in the next UTC year.
HORIZON_YEARS = 41

_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


class CronSchedule(Schedule):
    """A 5- or 6-field cron expression (or a macro such as ``@daily``) in a time zone."""

    __slots__ = ("_by_shape", "spec")

    spec: CronSpec

    def __init__(self, expression: str, zone: ZoneInfo, spec: CronSpec, offset: int = 0) -> None:
        super().__init__(expression, zone, offset)
        self.spec = spec
        # The matching days of each month shape (28 shapes: 28-31 days, the 1st on each
        # weekday), computed when first needed and shared through the spec: the day search
        # visits matching days only. Two threads filling a slot store equal values: no lock.
        self._by_shape = spec.by_shape

    @property
    def wildcard(self) -> bool:
        """Whether the hour field starts with ``*`` (selects the DST rule)."""
        return self.spec.hour_star

    def describe(self) -> str:
        return describe_cron(self.spec) + describe_offset(self.offset)

    def with_offset(self, seconds: int) -> CronSchedule:
        return CronSchedule(self.expression, self.zone, self.spec, self.offset + seconds)

    # --- fire instants ------------------------------------------------------------------------

    def _fire_seconds(self, first: int) -> Iterator[int]:
        shift = self.offset
        for u in self._base_fire_seconds(first - shift):
            yield u + shift

    def _base_fire_seconds(self, first: int) -> Iterator[int]:
        """Fire instants ``>= first`` of the expression itself (without the offset)."""
        lowest = zones.year_start(zones.MIN_YEAR + 1)
        first = max(first, lowest)
        year = zones.year_of(first)
        if year > zones.MAX_YEAR:
            return
        # The search gives up HORIZON_YEARS after the start or after the latest fire, so that
        # a schedule that fires once in decades still lists every fire.
        horizon = year + HORIZON_YEARS
        fired = False
        fixed = not self.spec.hour_star
        pieces = zones.segments(self.zone, first, zones.MAX_YEAR, self._may_fire_in)
        for start, end, offset, previous in pieces:
            if fired:
                horizon, fired = zones.year_of(start) + HORIZON_YEARS, False
            elif zones.year_of(start) > horizon:
                return
            wall_from = max(first, start) + offset
            if fixed and previous < offset and start >= first:
                # Spring forward at `start`: wall times [start+previous, start+offset) do not
                # exist. If any of them matches, the slot fires once, at the jump; a slot at
                # the first wall time after the gap is the same instant, so it is not repeated.
                gap = start + previous
                if next(self._walls(gap, start + offset), None) is not None:
                    yield start
                    fired = True
                    wall_from = start + offset + 1
            if fixed and previous > offset:
                # Fall back at `start`: wall times [start+offset, start+previous) are occurring
                # for the second time; they fired at their first occurrence, before `start`.
                wall_from = max(wall_from, start + previous)
            for wall in self._walls(wall_from, end + offset):
                yield wall - offset
                fired = True

    def _may_fire_in(self, year: int) -> bool:
        """Whether a local day within two days of UTC year ``year`` matches. When none does,
        no instant of that year can fire, nor can its offset changes move a slot, so its
        transitions need not be found: "0 0 * 2 4#5" (a fifth Thursday in February) matches in
        one year of 28, and finding the transitions of the years between cost 50 ms a zone."""
        first = date(year, 1, 1).toordinal() - 2
        end = date(year + 1, 1, 1).toordinal() + 2
        return next(self._days(first, end), None) is not None

    def _walls(self, low: int, high: int) -> Iterator[int]:
        """Matching wall times ``w`` with ``low <= w < high``, in increasing order."""
        if low >= high:
            return
        first_day = zones.EPOCH_ORDINAL + low // zones.DAY
        end_day = zones.EPOCH_ORDINAL + (high - 1) // zones.DAY + 1
        first_time = low % zones.DAY
        for ordinal in self._days(first_day, end_day):
            base = (ordinal - zones.EPOCH_ORDINAL) * zones.DAY
            for time in self._times(first_time if ordinal == first_day else 0):
                wall = base + time
                if wall >= high:
                    return
                yield wall

    def _days(self, first: int, end: int) -> Iterator[int]:
        """Ordinals of matching days in ``[first, end)``, skipping whole months and years."""
        months = self.spec.months
        start = date.fromordinal(first)
        year, month, day = start.year, start.month, start.day
        while True:
            index = bisect.bisect_left(months, month)
            if index == len(months):
                year, month, day = year + 1, months[0], 1
            elif months[index] != month:
                month, day = months[index], 1
            if year > zones.MAX_YEAR:
                return
            month_start = date(year, month, 1).toordinal() - 1  # ordinal of day 0
            if month_start + day >= end:
                return
            # date.toordinal() is 1 for Monday 0001-01-01, so ordinal % 7 is 0 on Sundays.
            matching = self._month_days(_days_in_month(year, month), (month_start + 1) % 7)
            for current in matching[bisect.bisect_left(matching, day) :]:
                ordinal = month_start + current
                if ordinal >= end:
                    return
                yield ordinal
            month, day = month + 1, 1

    def _month_days(self, length: int, first_weekday: int) -> tuple[int, ...]:
        """The matching days of a month with ``length`` days whose 1st is ``first_weekday``."""
        slot = (length - 28) * 7 + first_weekday
        found = self._by_shape[slot]
        if found is None:
            found = self._by_shape[slot] = days.month_days(self.spec, length, first_weekday)
        return found

    def _times(self, first: int) -> Iterator[int]:
        """Matching seconds-of-day ``>= first``, in increasing order."""
        spec = self.spec
        hours, minutes, seconds = spec.hours, spec.minutes, spec.seconds
        first_hour, rest = divmod(first, 3600)
        first_minute, first_second = divmod(rest, 60)
        for hour in hours[bisect.bisect_left(hours, first_hour) :]:
            minute_index = bisect.bisect_left(minutes, first_minute) if hour == first_hour else 0
            for minute in minutes[minute_index:]:
                second_index = (
                    bisect.bisect_left(seconds, first_second)
                    if hour == first_hour and minute == first_minute
                    else 0
                )
                base = hour * 3600 + minute * 60
                for second in seconds[second_index:]:
                    yield base + second
