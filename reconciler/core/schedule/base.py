"""The :class:`Schedule` interface shared by cron expressions and ``@every`` intervals."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from . import zones

# How many slots one look-back window of latest_two walks before it bisects instead: a minute
# of a per-second schedule (60) is walked, as the dense common case costs no more that way.
_WALK = 64


class Schedule(abc.ABC):
    """When a task fires: a cron expression or an ``@every`` interval, in a time zone.

    Fire instants are whole seconds. Every method takes and returns timezone-aware datetimes;
    results are expressed in :attr:`zone`, so ``isoformat()`` shows the zone's offset.

    Beware that Python compares two datetimes *with the same tzinfo* by wall time, ignoring
    ``fold``: across a fall-back, 01:30 (second occurrence) sorts before 01:45 (first). Compare
    results with ``.timestamp()`` or after ``.astimezone(UTC)`` when that matters. And ``==``
    between datetimes in *different* zones is always False when one of them is such a repeated
    wall time (PEP 495), so do not compare a result with ``==`` against a UTC datetime.
    """

    __slots__ = ("expression", "offset", "zone")

    expression: str  # as given by the user
    zone: ZoneInfo
    offset: int  # seconds every fire time is shifted later by (jitter); 0 normally

    def __init__(self, expression: str, zone: ZoneInfo, offset: int = 0) -> None:
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        self.expression = expression
        self.zone = zone
        self.offset = offset

    # --- what subclasses provide -------------------------------------------------------------

    @abc.abstractmethod
    def _fire_seconds(self, first: int) -> Iterator[int]:
        """The fire instants (Unix seconds) at or after ``first``, strictly increasing.

        The iterator ends when the schedule stops firing or the search horizon is reached.
        """

    @abc.abstractmethod
    def describe(self) -> str:
        """The schedule in plain English, e.g. ``"at 02:00 every day"``."""

    @abc.abstractmethod
    def with_offset(self, seconds: int) -> Schedule:
        """The same schedule with every fire time shifted ``seconds`` later (jitter)."""

    # --- derived ----------------------------------------------------------------------------

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire instant strictly after ``after``; ``None`` if it never fires again."""
        for u in self._fire_seconds(zones.first_second_after(after)):
            return zones.to_datetime(u, self.zone)
        return None

    def fire_times(self, after: datetime, n: int) -> list[datetime]:
        """The next ``n`` fire instants strictly after ``after`` (fewer if it stops firing)."""
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        result: list[datetime] = []
        if n == 0:
            zones.first_second_after(after)  # still reject naive datetimes
            return result
        for u in self._fire_seconds(zones.first_second_after(after)):
            result.append(zones.to_datetime(u, self.zone))
            if len(result) == n:
                break
        return result

    def count_between(self, after: datetime, until: datetime) -> tuple[int, datetime | None]:
        """How many fire instants ``t`` with ``after < t <= until``, and the latest of them."""
        first = zones.first_second_after(after)
        last = zones.last_second_at_or_before(until)
        count, latest = 0, None
        if last < first:
            return count, latest
        for u in self._fire_seconds(first):
            if u > last:
                break
            count, latest = count + 1, u
        return count, None if latest is None else zones.to_datetime(latest, self.zone)

    def count_within(self, after: datetime, until: datetime, budget: int) -> int | None:
        """How many fire instants ``t`` with ``after < t <= until``; None if counting them
        would take more than ``budget`` steps (here: slots, counted one by one; a schedule
        that counts by arithmetic always answers)."""
        first = zones.first_second_after(after)
        last = zones.last_second_at_or_before(until)
        count = 0
        if last < first:
            return count
        for u in self._fire_seconds(first):
            if u > last:
                break
            if count == budget:
                return None
            count += 1
        return count

    def latest_two(
        self, after: datetime, until: datetime
    ) -> tuple[datetime | None, datetime | None]:
        """The latest fire instant ``t`` with ``after < t <= until`` and the one before it
        (None where there is none). It looks back from ``until`` in windows that grow 64-fold
        (a minute, an hour, ...), walking at most :data:`_WALK` slots of each; past that it
        bisects. So the cost is the slots near ``until`` plus a few lookups per bit of the
        span, not every slot since ``after``: a per-second task down for a year has 31 million
        of them, and one that fires every second from January to June, seen in December, has
        15 million before its gap, which a window reaching back past the gap walked (5 s)."""
        first = zones.first_second_after(after)
        last = zones.last_second_at_or_before(until)
        if last < first:
            return None, None
        window = 60
        while True:
            start = max(first, last - window + 1)
            found = self._walk(start, last)
            if len(found) > _WALK:
                # Too many to walk: the latest two are at or after found[-2], and found[-1]
                # is a slot to bisect up from.
                latest = self._latest_from(found[-1], last)
                if latest == found[-1]:
                    return self._at(latest), self._at(found[-2])
                return self._at(latest), self._at(self._latest_from(found[-1], latest - 1))
            if len(found) >= 2 or start == first:
                previous = found[-2] if len(found) >= 2 else None
                return self._at(found[-1] if found else None), self._at(previous)
            window *= 64

    def _walk(self, start: int, last: int) -> list[int]:
        """The fire instants in ``[start, last]``, in order; only the first ``_WALK + 1`` when
        there are more."""
        found: list[int] = []
        for u in self._fire_seconds(start):
            if u > last:
                break
            found.append(u)
            if len(found) > _WALK:
                break
        return found

    def _latest_from(self, low: int, high: int) -> int:
        """The latest fire instant in ``[low, high]``, given that ``low`` is one.

        Bisection on ``s`` with "the first fire at or after ``s`` is at or before ``high``",
        which holds at ``low`` and, once false, stays false for larger ``s``. Each step is one
        lookup of a first fire (cheap: the day search skips whole months) and halves the span,
        or moves ``low`` to the fire found, never walking the slots in between. It relies on
        ``_fire_seconds(s)`` listing the same instants from any ``s`` (the search horizon of
        decades is longer than any gap between two fires of a schedule that parses)."""
        while low < high:
            middle = (low + high + 1) // 2
            found = next(self._fire_seconds(middle), None)
            if found is not None and found <= high:
                low = found
            else:
                high = middle - 1
        return low

    def _at(self, u: int | None) -> datetime | None:
        return None if u is None else zones.to_datetime(u, self.zone)

    # --- value semantics ----------------------------------------------------------------------

    def _key(self) -> tuple[object, ...]:
        return (type(self), self.expression, self.zone.key, self.offset)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        offset = f", offset={self.offset}" if self.offset else ""
        return f"{type(self).__name__}({self.expression!r}, {self.zone.key!r}{offset})"
