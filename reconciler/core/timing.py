"""Slot accounting and retry timing. Pure: the current time is always an argument.

``backlog`` answers "which slots were missed between two instants, and what becomes of
them": the latest runs once (if still inside the starting deadline), every older one is
superseded and recorded as one counted skip. Never a backfill storm, never a silent drop.
Its cost does not grow with the gap: the latest slots are found looking back from the end,
and the older ones are counted (a cron schedule one by one, up to :data:`COUNTED`; beyond,
the skip says "more than").
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from reconciler.core.fields import MAX_BACKOFF
from reconciler.core.model import RetryPolicy
from reconciler.core.schedule import Schedule

# Older missed slots counted one by one, at most (a cron schedule has no closed form): past
# this, a skip says "more than". Ten thousand cost a few milliseconds.
COUNTED = 10_000

# A slot may be handed to the dispatcher this many seconds before it, at most: its run is
# decided and its claim written ahead, and its start then waits for the slot itself
# (``scheduling.apscheduler`` says how far ahead; ``controller.dispatch`` what waits).
AHEAD_MAX = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class Backlog:
    latest: datetime | None  # the most recent missed slot: the one that may still run
    superseded: int  # how many older missed slots there were
    last_superseded: datetime | None  # the newest of those (names the skip record)
    more: bool = False  # there were more than ``superseded`` (COUNTED): not all counted

    @property
    def empty(self) -> bool:
        return self.latest is None


NO_BACKLOG = Backlog(None, 0, None)


def backlog(schedule: Schedule, after: datetime, until: datetime) -> Backlog:
    """The slots ``t`` of ``schedule`` with ``after < t <= until``."""
    latest, last_superseded = schedule.latest_two(after, until)
    if latest is None:
        return NO_BACKLOG
    if last_superseded is None:
        return Backlog(latest, 0, None)
    count = schedule.count_within(after, last_superseded, COUNTED)
    if count is None:
        return Backlog(latest, COUNTED, last_superseded, more=True)
    return Backlog(latest, count, last_superseded)


def retry_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one:
    ``backoffSeconds * backoffMultiplier ** (attempt - 1)``, capped by ``maxBackoffSeconds``,
    and never more than a day (:data:`~reconciler.core.fields.MAX_BACKOFF`, the most
    ``maxBackoffSeconds`` may say): unset, the growth would have no bound (60 s times 10 to the
    11th is 190 000 years), and a waiting retry holds its slot, so ``Forbid`` would skip every
    later one."""
    cap = MAX_BACKOFF if policy.max_backoff_seconds is None else policy.max_backoff_seconds
    return float(min(policy.backoff_seconds * policy.backoff_multiplier ** (attempt - 1), cap))
