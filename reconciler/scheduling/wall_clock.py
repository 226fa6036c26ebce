"""What the scheduler's wake-ups make of a wall clock that jumps: stepped (an NTP step, an
operator's ``date -s``, a virtual machine restored) or left behind by a suspended host.

- Forward: the slots missed meanwhile are one hand-off, of the latest (``latest_due``); the
  dispatcher accounts for the others.
- Back: each job keeps the next slot it had, so nothing runs until the clock passes it again
  (README), and the task list shows that slot. A slot that ran already is not run twice; the
  wait may be as long as the step, so ``ClockWatch`` says it once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.core.schedule import Schedule
from reconciler.core.timing import AHEAD_MAX

log = logging.getLogger("crontask.scheduler")

# A step back shorter than this is not said: it delays a slot no more than a wake-up may.
CLOCK_BACK_SAID = 1.0


def latest_due(job: Any, now: datetime) -> datetime:
    """The job's latest slot due at ``now``: its next run time or a later slot of its
    schedule; its next run time when that is not due yet. The slot APScheduler's
    ``job._get_run_times(now)[-1]`` gives, but that walks every slot since the next run time,
    one trigger call each: after a freeze (host suspended, process stopped, the clock stepped
    forward) a per-second task held the loop 3 s per day missed. The schedule looks back from
    ``now`` instead, at the cost of the slots near it (``Schedule.latest_two``)."""
    at: datetime = job.next_run_time
    if at > now:
        return at
    latest, _ = job.trigger.schedule.latest_two(at, now)
    # In UTC, as the trigger answers: the slot is the key of the trigger's caches.
    return at if latest is None else latest.astimezone(UTC)


class ClockWatch:
    """Says when the wall clock went back between two wake-ups: once a step, at the first
    wake-up after it. How far, by the monotonic clock, which no step moves (and which stands
    still while the host is suspended: that is a step forward of the wall clock, not said)."""

    __slots__ = ("_mono", "_wall")

    def __init__(self) -> None:
        self._wall: float | None = None  # the last wake-up's, as a timestamp
        self._mono = 0.0

    def woke(self, now: datetime, mono: float, following: datetime | None) -> None:
        """A wake-up at ``now`` (the wall clock) and ``mono`` (the monotonic clock, read with
        it: a slow hand-off between the two is no step); ``following``: the first slot of any
        job after it, which no slot runs before."""
        wall = now.timestamp()
        before, since = self._wall, self._mono
        self._wall, self._mono = wall, mono
        if before is None or following is None:
            return
        back = before + (mono - since) - wall
        if back > CLOCK_BACK_SAID:
            log.warning(
                "the wall clock went back: no slot runs until it reaches the next one",
                extra={"fields": {"seconds": round(back, 3), "next": following.isoformat()}},
            )


def listed_after(schedule: Schedule, now: datetime, waited: datetime | None) -> datetime:
    """The instant a task's next slots are listed after: ``now``, or just before ``waited``,
    the slot its job waits for, when that is later (the clock went back: no slot runs before
    it). Not when the job waits for the slot right after one within ``AHEAD_MAX`` of ``now``:
    that one was handed over ahead of its instant, and has not run yet."""
    if waited is None:
        return now
    first = next(iter(schedule.fire_times(now, 1)), None)
    if first is not None and first - now <= timedelta(seconds=AHEAD_MAX):
        following = next(iter(schedule.fire_times(first, 1)), None)
        if following is None or waited <= following:
            return now
    return max(now, waited - timedelta(microseconds=1))
