"""Slot accounting and retry timing. Pure: the current time is always an argument.

``backlog`` answers "which slots were missed between two instants, and what becomes of
them": the latest runs once (if still inside the starting deadline), every older one is
superseded and recorded as one counted skip. Never a backfill storm, never a silent drop.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from reconciler.core.model import RetryPolicy
from reconciler.core.schedule import Schedule


@dataclasses.dataclass(frozen=True, slots=True)
class Backlog:
    latest: datetime | None  # the most recent missed slot: the one that may still run
    superseded: int  # how many older missed slots there were
    last_superseded: datetime | None  # the newest of those (names the skip record)

    @property
    def empty(self) -> bool:
        return self.latest is None


NO_BACKLOG = Backlog(None, 0, None)


def backlog(schedule: Schedule, after: datetime, until: datetime) -> Backlog:
    """The slots ``t`` of ``schedule`` with ``after < t <= until``."""
    count, latest = schedule.count_between(after, until)
    if latest is None:
        return NO_BACKLOG
    if count == 1:
        return Backlog(latest, 0, None)
    # The older ones end just before the latest; one more query names the newest of them.
    _, last_superseded = schedule.count_between(after, _just_before(latest))
    return Backlog(latest, count - 1, last_superseded)


def _just_before(at: datetime) -> datetime:
    return at - timedelta(microseconds=1)


def retry_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one:
    ``backoffSeconds * backoffMultiplier ** (attempt - 1)``, capped by ``maxBackoffSeconds``."""
    delay = policy.backoff_seconds * policy.backoff_multiplier ** (attempt - 1)
    if policy.max_backoff_seconds is not None:
        delay = min(delay, policy.max_backoff_seconds)
    return float(delay)
