"""The :class:`Schedule` interface shared by cron expressions and ``@every`` intervals."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from . import zones


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
        (a minute, an hour, ...), so the cost is the slots near ``until``, not every slot since
        ``after``: a per-second task down for a year has 31 million of them."""
        first = zones.first_second_after(after)
        last = zones.last_second_at_or_before(until)
        if last < first:
            return None, None
        window = 60
        while True:
            start = max(first, last - window + 1)
            latest: int | None = None
            previous: int | None = None
            for u in self._fire_seconds(start):
                if u > last:
                    break
                previous, latest = latest, u
            if previous is not None or start == first:
                return self._at(latest), self._at(previous)
            window *= 64

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
