"""Each task's slot before its latest one, for ``crontask_task_slot_before_last_timestamp_seconds``.

The latest slot is the last one of the task's schedule before its next slot (the scheduler's
``next_fire``); the slot before last is the one before that. A task with no success since its
slot before last has let two slots go by without one (``CrontaskTaskNoRecentSuccess``), however
uneven its slots: a weekday task on Monday, whose slot before last is Friday's; ``0 9,10 * * *``
at 09:00, whose is yesterday's 10:00. No multiple of the interval says that, and after a restart
the scheduler's interval is even the one after the next slot.

The scheduler holds the next slot and the interval up to it, not the slots before, so they are
worked out here from the task's schedule, and kept from scrape to scrape (:class:`SlotsBeforeLast`):
when the slot that was next has come (the next slot less the interval is the old next), the old
latest slot becomes the slot before last, with no slot arithmetic. The arithmetic is done for a
task new to this process (start-up, a handover, a changed definition) or whose slots went by
several between two scrapes (a task every few seconds): a forward walk over three slots from the
guess that they are evenly spaced (about 60 µs), or, for uneven ones, a search back from the next
slot. Tasks of one schedule and one next slot share that work.

A task whose slots changed under this process (resumed: ``suspend`` true to false; its
schedule, time zone or jitter edited) exports no slot before last that is earlier than the
change until two slots have passed under its current definition: the slots before it were not
the task's (they fell while it was suspended, or were its old schedule's), and its last success
is older than them when the latest missed slot was not caught up (``startingDeadlineSeconds``),
so the alert would fire for slots it never had. The change counts from the first read that sees
it (``now``, the scrape's time: the change itself is not known here, so with no scrape for a
while after it, or scrapes further apart than the task's slots, the slots it had under its new
definition meanwhile do not count, and the series comes back two slots after that scrape; a
time zone spelled otherwise for the same slots, ``UTC`` as ``Etc/UTC``, is a change too).
A suspended task has no next slot, but its entry is kept, so that its resume is a change. An
edit that moves no slot (its command, its deadline) changes nothing here: the task had those
slots, and an alert about them stays until a run succeeds. A task declared anew (new, or
declared again after it was removed) is such a change too, seen at the first read that finds it
in the snapshot and not among the tasks declared at the read before: the scheduler catches up
no slot that fell before it was declared, and its last success, read back from the history, is
older than them. A task new to this process otherwise (start-up, a handover, back from another
replica) is exported at once, as nothing says when it changed: a restart must not silence the
alert of a task that was failing before it. While a
task's slots come one by one, the check costs nothing per scrape: the exported value is worked
out with the entry, when its next slot moves.
"""

from __future__ import annotations

import threading
from collections.abc import Container, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from reconciler.core.desired import Definition
from reconciler.core.schedule import Schedule, jitter_offset, parse_schedule
from reconciler.core.schedule.cron import HORIZON_YEARS
from reconciler.sinks.metrics_families import TaskSlot

# How far back from the next slot the slot before last is looked for: two gaps. A cron
# expression's longest gap is 40 years (a Sunday 29 February, "0 0 ? 2 0#5", across 2100,
# which is no leap year: 2088 to 2128), the schedule's search horizon less the year it adds;
# an @every interval's is one year. The search widens 16-fold from two intervals, so only
# sparse schedules reach the whole lookback, and a search over it costs about a millisecond.
LOOKBACK: Final = 2 * HORIZON_YEARS * 366 * 86400.0
_SHARED_MAX: Final = 65_536  # results kept for tasks of one schedule and next slot

# What places a task's slots: its expression, time zone, jitter and whether it is suspended
# (a task's key, which its jitter offset also depends on, is its entry's).
_Placement = tuple[str, str, int | None, bool]
# A task's entry as last read: (spec hash, placement, next slot as read, the same in Unix time,
# latest slot, slot before last, since, exported). ``since`` is the read that saw its placement
# change (Unix time; None: unchanged since this process first saw it, or two slots have passed
# since), ``exported`` the slot before last unless it is earlier than ``since``. Without a next
# slot (suspended), the four slot fields are None.
_Known = tuple[
    str, _Placement, datetime | None, float | None, float | None, float | None, float | None,
    float | None,
]  # fmt: skip
# (expression, time zone, offset, next slot): tasks that share the arithmetic.
_SharedKey = tuple[str, str, int, float]


class SlotsBeforeLast:
    """Reads the slot before last of every task in a scheduler's snapshot (:meth:`read`), from
    any thread; concurrent reads take turns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, _Known] = {}
        self._shared: dict[_SharedKey, tuple[float | None, float | None]] = {}
        self._parsed: dict[tuple[str, str], Schedule] = {}
        self._declared: Container[str] | None = None  # the tasks declared at the last read

    def read(
        self,
        tasks: Mapping[str, TaskSlot],
        now: float,
        declared: Container[str] | None = None,
    ) -> dict[str, float]:
        """The slot before last of each task in ``tasks`` that has a next slot (Unix time);
        none for a task with no next slot (suspended), nor one whose schedule has no slot
        before last within :data:`LOOKBACK`, nor one whose slots this process saw change
        (resumed, rescheduled) and that has not had two slots since (the module's docstring).
        ``now`` is the time of this read (Unix time): a change it sees counts from then.
        ``declared``: the keys of every task declared now (with --ha, not only this process'
        share; None: not known); a task new here that was not declared at the read before is
        declared anew, a change. Tasks gone from ``tasks`` are forgotten."""
        found: dict[str, float] = {}
        with self._lock:
            known, before = self._known, self._declared
            kept: dict[str, _Known] = {}
            for key in tasks:
                definition, following, interval = tasks[key]
                entry = known.get(key)
                # The common case, a few hundred nanoseconds: the scheduler holds the same next
                # slot (or none, still), the very object read last time, of the same definition.
                if entry is None or entry[2] is not following or entry[0] != definition.hash:
                    anew = entry is None and before is not None and key not in before
                    entry = self._entry(entry, definition, following, interval, now, anew)
                kept[key] = entry
                if entry[7] is not None:
                    found[key] = entry[7]
            self._known = kept
            if declared is not None:
                self._declared = declared
        return found

    def _entry(
        self,
        old: _Known | None,
        definition: Definition,
        following: datetime | None,
        interval: float | None,
        now: float,
        anew: bool = False,
    ) -> _Known:
        if old is not None and old[0] == definition.hash:
            placed, since = old[1], old[6]  # the same spec (its next slot moved): in place
        elif anew:
            placed, since = _placement(definition), now  # declared anew: seen now
        else:
            placed, since = _since(old, definition, now)
        if following is None:
            return (definition.hash, placed, None, None, None, None, since, None)
        at = following.timestamp()
        slots = None
        if old is not None and old[3] is not None and old[1] == placed:
            if old[3] == at:
                slots = (old[4], old[5])
            elif interval is not None and at - interval == old[3]:
                # The slot that was next came and was handed off: it is the latest now.
                slots = (old[3], old[4])
        latest, before = slots if slots is not None else self._slots(definition, at, interval)
        if since is not None and before is not None and before >= since:
            since = None  # two slots have come since the change: both the task's own
        exported = before if since is None else None
        return (definition.hash, placed, following, at, latest, before, since, exported)

    def _slots(
        self, definition: Definition, following: float, interval: float | None
    ) -> tuple[float | None, float | None]:
        spec = definition.task.spec
        jitter = getattr(spec, "jitter_seconds", None)  # as scheduling.base.schedule_of has it
        offset = jitter_offset(definition.key, jitter) if jitter else 0
        shared: _SharedKey = (spec.schedule, spec.time_zone, offset, following)
        slots = self._shared.get(shared)
        if slots is None:
            schedule = self._schedule(spec.schedule, spec.time_zone, offset)
            slots = latest_two(schedule, following, interval)
            if len(self._shared) >= _SHARED_MAX:
                self._shared.clear()
            self._shared[shared] = slots
        return slots

    def _schedule(self, expression: str, zone: str, offset: int) -> Schedule:
        schedule = self._parsed.get((expression, zone))
        if schedule is None:
            schedule = parse_schedule(expression, zone)
            if len(self._parsed) >= _SHARED_MAX:
                self._parsed.clear()
            self._parsed[(expression, zone)] = schedule
        return schedule.with_offset(offset) if offset else schedule


def _since(
    old: _Known | None, definition: Definition, now: float
) -> tuple[_Placement, float | None]:
    """The placement of a task whose spec changed (or is new here), and since when its slots
    are its current definition's."""
    placed = _placement(definition)
    if old is None:
        return placed, None  # new to this process: nothing says when it changed
    if old[1] != placed:
        return placed, now  # resumed, suspended, or its slots moved: seen now
    return placed, old[6]  # an edit that moves no slot (its command, its deadline)


def _placement(definition: Definition) -> _Placement:
    spec = definition.task.spec
    jitter = getattr(spec, "jitter_seconds", None)  # as _slots has it
    return (spec.schedule, spec.time_zone, jitter, bool(spec.suspend))


def latest_two(
    schedule: Schedule, following: float, interval: float | None
) -> tuple[float | None, float | None]:
    """The latest slot of ``schedule`` before ``following`` (its next slot) and the one before
    it, in Unix time (None where there is none within :data:`LOOKBACK`). ``interval``, the
    scheduler's, is the guess at their spacing."""
    if interval:
        guess = following - 2 * interval
        walk = [t.timestamp() for t in schedule.fire_times(_at(guess - 1), 3)]
        if walk == [guess, guess + interval, following]:
            return guess + interval, guess
    until = _at(following - 1)
    span = 2 * max(interval or 0.0, 60.0)
    while True:
        span = min(span, LOOKBACK)
        latest, before = schedule.latest_two(_at(following - span), until)
        if before is not None or span >= LOOKBACK:
            return _seconds(latest), _seconds(before)
        span *= 16


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _seconds(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


__all__: Sequence[str] = ["LOOKBACK", "SlotsBeforeLast", "latest_two"]
