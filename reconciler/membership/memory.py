"""The in-memory twin of membership: replicas in one process sharing a :class:`Registry`,
judged by the registry's own clock (a fake one in tests). ``unreachable`` makes a replica's calls
fail, as a partition from the service would."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta

from reconciler.membership.base import (
    MOST_MEMBERS,
    Announcement,
    Cap,
    Difference,
    Member,
    MembershipUnavailable,
    judged_lease,
    readable_version,
)
from reconciler.membership.clock import ClockWatch

Clock = Callable[[], datetime]


class Registry:
    """The shared service: records by id, expiring on the registry's clock."""

    def __init__(self, clock: Clock = lambda: datetime.now(UTC), most: int = MOST_MEMBERS) -> None:
        self.clock = clock
        self._cap = Cap(most)  # one renewal at a time, under the lock
        self.records: dict[str, tuple[Member, float]] = {}
        self.unreachable: set[str] = set()
        self._lock = threading.Lock()

    def renew(self, me: Announcement) -> list[Member]:
        return self.counted(me)[0]

    def counted(self, me: Announcement) -> tuple[list[Member], int]:
        """The members a renewal returns, and how many were live before the cap."""
        with self._lock:
            if me.id in self.unreachable:
                raise MembershipUnavailable(f"{me.id} cannot reach the registry")
            now = self.clock()
            found = self.records.get(me.id)
            ours = me.lease_seconds
            since = found[0].since if found and self._live(found, now, ours) else now
            member = Member(
                me.id,
                me.address,
                since,
                now,
                me.digest,
                me.revision,
                me.owned,
                me.draining,
                readable_version(me.version),
            )
            self.records[me.id] = (member, me.lease_seconds)
            live = [m for m, s in self.records.values() if self._live((m, s), now, ours)]
            kept = self._cap.kept(live, me, lambda m: (m.digest is None, now - m.renewed, m.id))
            return kept, len(live)

    def leave(self, me: Announcement) -> None:
        with self._lock:
            if me.id in self.unreachable:
                raise MembershipUnavailable(f"{me.id} cannot reach the registry")
            self.records.pop(me.id, None)

    @staticmethod
    def _live(record: tuple[Member, float], now: datetime, ours: float) -> bool:
        # Each record by its own lease, as in the other backends (base.judged_lease).
        member, seconds = record
        return now - member.renewed < timedelta(seconds=judged_lease(seconds, ours))


@dataclasses.dataclass
class MemoryMembership:
    """``clock`` is this replica's own clock (None: the registry's, never off), compared at
    each renewal with the registry's (``membership.clock``), as PostgreSQL's ``now()`` is."""

    registry: Registry
    clock: Clock | None = None
    live_count: int = dataclasses.field(default=0, init=False)
    clock_watch: ClockWatch = dataclasses.field(default_factory=ClockWatch, init=False)

    def renew(self, me: Announcement) -> list[Member]:
        local = self.clock or self.registry.clock
        before = local()
        members, self.live_count = self.registry.counted(me)
        after = local()
        ours = next((m for m in members if m.id == me.id), None)  # always there (base.Cap)
        if ours is not None:
            self.clock_watch.note(before, after, ours.renewed)  # dated by the registry's clock
        return members

    @property
    def clock_offset(self) -> float | None:
        return self.clock_watch.seconds

    def leave(self, me: Announcement) -> None:
        self.registry.leave(me)

    def close(self) -> None:
        pass


class MemoryViews:
    def __init__(self) -> None:
        self.views: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def publish(self, member: str, changes: Mapping[str, str | None]) -> None:
        with self._lock:
            view = self.views.setdefault(member, {})
            for key, value in changes.items():
                if value is None:
                    view.pop(key, None)
                else:
                    view[key] = value

    def differing(self, members: Collection[str], limit: int = 20) -> list[Difference]:
        with self._lock:
            views = {m: self.views.get(m, {}) for m in members}
        keys = sorted({k for view in views.values() for k in view})
        found: list[Difference] = []
        for key in keys:
            seen = {m: view.get(key) for m, view in views.items()}
            if len(set(seen.values())) > 1:
                found.append((key, seen))
                if len(found) == limit:
                    break
        return found

    def drop(self, member: str) -> None:
        with self._lock:
            self.views.pop(member, None)
