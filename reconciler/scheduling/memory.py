"""A scheduler driven by a fake clock: the twin of the APScheduler adapter in tests.

``advance(now)`` fires, in time order, every slot due up to ``now`` (a late pass fires the
latest due slot once per task, as the real adapter's coalescing does). ``snapshot`` reports what
the real adapter reports: the next slot, and the interval from the slot fired last to it (before
the first, from the next slot to the one after).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from reconciler.core.desired import Definition
from reconciler.core.plan import Operation, Step
from reconciler.core.schedule import Schedule
from reconciler.scheduling.base import FireCallback, Scheduled, schedule_of


class MemoryScheduler:
    def __init__(self, on_fire: FireCallback, now: datetime) -> None:
        self._on_fire = on_fire
        self._now = now
        self._owned: dict[str, Definition] = {}
        self._schedules: dict[str, Schedule] = {}
        self._next: dict[str, datetime | None] = {}
        self._previous: dict[str, datetime] = {}  # the slot fired last, since applied
        self.running = False

    def start(self) -> None:
        self.running = True

    def shutdown(self) -> None:
        self.running = False

    def apply(self, step: Step) -> None:
        if step.operation is Operation.REMOVE:
            self._owned.pop(step.key, None)
            self._schedules.pop(step.key, None)
            self._next.pop(step.key, None)
            self._previous.pop(step.key, None)
            return
        assert step.desired is not None
        schedule = schedule_of(step.desired)
        self._owned[step.key] = step.desired
        self._schedules[step.key] = schedule
        suspended = step.desired.task.spec.suspend
        self._next[step.key] = None if suspended else schedule.next_after(self._now)
        self._previous.pop(step.key, None)

    def owned(self) -> Mapping[str, Definition]:
        return dict(self._owned)

    def next_fire_time(self, key: str) -> datetime | None:
        return self._next.get(key)

    def snapshot(self) -> dict[str, Scheduled]:
        return {
            key: Scheduled(definition, self._next.get(key), self._interval(key))
            for key, definition in list(self._owned.items())
        }

    def _interval(self, key: str) -> float | None:
        following = self._next.get(key)
        if following is None:
            return None
        previous = self._previous.get(key)
        if previous is None:
            previous, following = following, self._schedules[key].next_after(following)
            if following is None:
                return None
        # In real seconds: subtracting two datetimes of one zone counts wall-clock time.
        return following.timestamp() - previous.timestamp()

    def advance(self, now: datetime) -> list[tuple[str, datetime]]:
        """Move the clock to ``now`` and fire what is due; returns what fired."""
        self._now = now
        fired: list[tuple[str, datetime]] = []
        for key, due in sorted(self._next.items(), key=lambda kv: (kv[1] is None, kv[1], kv[0])):
            if due is None or due > now:
                continue
            latest = due
            following = self._schedules[key].next_after(due)
            while following is not None and following <= now:
                latest, following = following, self._schedules[key].next_after(following)
            self._next[key] = following
            self._previous[key] = latest
            fired.append((key, latest))
        for key, at in sorted(fired, key=lambda f: f[1]):
            if self.running:
                self._on_fire(key, at)
        return fired
