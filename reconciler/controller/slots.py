"""The slot ledger: every slot of every task accounted for.

Per task it remembers the latest slot handed to the dispatcher (or the instant accounting began:
a task added now, or where a catch-up ended; a suspended task keeps its last slot, which
resuming catches up from), and answers what became of the slots in between, so that nothing is
dropped silently:

- a scheduled slot handed over late (the loop was blocked, the machine suspended) jumps over the
  slots between the previous one and itself: those are **superseded**, one counted skip;
- after downtime (``catch_up``, from the last slot the run store knows), only the latest missed
  slot may run, as a ``catchup``; the older ones are superseded; a task that never ran catches up
  nothing;
- with replicas, the slots not started because their claims could not be checked (the run store
  did not answer: ``unchecked``) are one gap, growing while the store stays silent, not a jump
  each: the next catch-up counts from before the first of them (the store answered), or, if a
  later slot was handed over meanwhile, records them as one skip (``CatchUp.held``); after a
  lapse (``release``) the lapse's catch-up counts them, or, if the store holds a later record
  of the task, they are one skip up to it.

The ledger only decides; the dispatcher records and runs. No I/O, no clock of its own. Every
instant it hands out is in UTC (a schedule answers in its own zone): run ids and records are
made from them, and two datetimes of one zone compare by wall time, ignoring ``fold``, so 02:30
before and after clocks go back would be one slot.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from reconciler.core.desired import Definition
from reconciler.core.schedule import Schedule
from reconciler.core.timing import backlog
from reconciler.scheduling.base import schedule_of

_JUST_BEFORE = timedelta(microseconds=1)  # a slot, as a catch-up counts from after it


@dataclasses.dataclass(frozen=True, slots=True)
class Superseded:
    """``count`` slots after ``after`` and before ``latest`` did not run; ``name`` (the newest
    of them) names their one skip record."""

    count: int
    after: datetime
    latest: datetime
    name: datetime
    more: bool = False  # more than ``count`` (the most counted one by one)
    why: str = "crontask was down or busy"


# Why the slots of a held gap did not run (``SlotLedger.unchecked``).
UNCHECKED = "their claims could not be checked: the run store did not answer"


@dataclasses.dataclass(frozen=True, slots=True)
class _Hold:
    """The slots after ``after`` were not started for want of a checked claim; ``waiting``: the
    slot handed over since the latest of them, whose claim decides whether the gap ends
    there (None: the ledger counts from ``after`` again)."""

    after: datetime
    waiting: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CatchUp:
    superseded: Superseded | None  # older missed slots, to record as one skip
    latest: datetime | None  # the missed slot that may still run, as a catchup
    # Slots not started for want of a checked claim, before a slot handed over since: one skip
    # a gap, always recorded (``SlotLedger.unchecked``).
    held: tuple[Superseded, ...] = ()


NOTHING = CatchUp(None, None)


class SlotLedger:
    def __init__(self) -> None:
        self._last: dict[str, datetime] = {}
        # Parsed schedules by task, valid while the spec hash matches (parsing costs more than
        # the slot arithmetic it serves, at every fire).
        self._schedules: dict[str, tuple[str, Schedule]] = {}
        self._holds: dict[str, _Hold] = {}  # the gap of each task (``unchecked``)
        # Gaps ended by a slot handed over since, before a later gap began: recorded at the next
        # catch-up, with the gap then.
        self._ended: dict[str, list[_Hold]] = {}

    def last_slot(self, key: str) -> datetime | None:
        return self._last.get(key)

    def track(self, key: str, since: datetime) -> None:
        """Count the slots of ``key`` from ``since`` on (a task added or changed now)."""
        self._last[key] = since.astimezone(UTC)

    def forget(self, key: str) -> None:
        self._last.pop(key, None)
        self._schedules.pop(key, None)
        self._holds.pop(key, None)
        self._ended.pop(key, None)

    def unchecked(self, key: str, slot: datetime) -> None:
        """``slot`` of ``key``, handed over, was not started: its claim could not be checked.
        The ledger counts from just before it again, so that a catch-up finds it missed; or,
        if it is the one handed over since the slots of such a gap, from before the gap: the
        gap grows. Counting from just before each one, the next slot handed over jumped it,
        and each such slot was its own skip record (a record a second, every second the store
        was silent, of an every-second task)."""
        slot = slot.astimezone(UTC)
        last = self._last.get(key)
        hold = self._holds.get(key)
        if hold is not None and (hold.waiting == slot or last == hold.after):
            self._holds[key] = _Hold(hold.after)
            self._last[key] = hold.after
            return
        if hold is not None and hold.waiting is not None:
            # A later slot's claim is answered first (the gap's, replaced, stopped before its
            # answer): the gap ended before that slot.
            self._ended.setdefault(key, []).append(hold)
        before = slot - _JUST_BEFORE
        after = before if last is None else min(last, before)
        self._holds[key] = _Hold(after)
        self._last[key] = after

    def release(self, key: str) -> None:
        """This replica's membership lapsed: the slot of ``key`` handed over since its gaps
        (``unchecked``) will not start (its claim is let go), so the lapse's catch-up counts
        from before them, unless the store's latest record is later (``catch_up``)."""
        holds = [*self._ended.get(key, []), *filter(None, [self._holds.get(key)])]
        if holds:
            self._last[key] = min(hold.after for hold in holds)

    def handed(self, definition: Definition, slot: datetime) -> Superseded | None:
        """A scheduled ``slot`` is being handed over: the slots it jumped over, if any."""
        key = definition.key
        slot = slot.astimezone(UTC)
        last = self._last.get(key)
        self._last[key] = max(slot, last) if last else slot
        if last is None or slot <= last:
            return None
        hold = self._holds.get(key)
        if hold is not None and last == hold.after:
            # The slots since the gap began are not jumped: its claim says where it ends.
            self._holds[key] = _Hold(hold.after, slot)
            return None
        missed = backlog(self._schedule(definition), last, slot)
        if missed.superseded and missed.last_superseded is not None:
            return Superseded(
                missed.superseded,
                last,
                slot,
                missed.last_superseded.astimezone(UTC),
                more=missed.more,
            )
        return None

    def catch_up(self, definition: Definition, anchor: datetime | None, until: datetime) -> CatchUp:
        """The slots after ``anchor`` (the task's last recorded slot) up to ``until`` (where the
        scheduler takes over) were missed. With no anchor (a task never run before), or for a
        suspended task, nothing is caught up. A suspended task keeps its anchor as its last
        slot: the slots that fall while it is suspended are not missed, but the latest of them
        is what resuming catches up, however many passes (edits, a restart) come between.
        A gap of slots not started for want of a checked claim (``unchecked``) ends here: this
        catch-up counts it if it counts from before it, else it is ``held``, one skip of its own
        (a slot handed over since is counted from: its claim was answered, or may yet be)."""
        key = definition.key
        holds = [*self._ended.pop(key, []), *filter(None, [self._holds.pop(key, None)])]
        missed = self._catch_up(definition, anchor, until)
        since = None if anchor is None else anchor.astimezone(UTC)
        # A gap this catch-up counts from before is its. One before ``since`` is not: it ends
        # at the slot handed over since (its claim answered, or yet to be), or at ``since``
        # (after a lapse, the store's latest record: a claim of this replica's that landed, or
        # another replica's run or catch-up, which then recorded the slot just before it, this
        # skip's id: the skip is not written, and that replica's records count the gap).
        ends = [(h.after, [at for at in (h.waiting, since) if at is not None]) for h in holds]
        gaps = (self._gap(definition, after, min(end)) for after, end in ends if end)
        held = tuple(filter(None, gaps))
        return dataclasses.replace(missed, held=held) if held else missed

    def _gap(self, definition: Definition, after: datetime, end: datetime) -> Superseded | None:
        """The slots after ``after`` and before ``end`` (a gap's: ``unchecked``)."""
        if end <= after:
            return None  # counted from ``after``: the catch-up's own
        missed = backlog(self._schedule(definition), after, end)
        count, named = missed.superseded, missed.last_superseded
        if missed.latest is not None and missed.latest < end:  # ``end`` is no slot (a mark)
            count, named = count + 1, missed.latest
        if not count or named is None:
            return None
        named = named.astimezone(UTC)
        return Superseded(count, after, end, named, more=missed.more, why=UNCHECKED)

    def _catch_up(
        self, definition: Definition, anchor: datetime | None, until: datetime
    ) -> CatchUp:
        key = definition.key
        until = until.astimezone(UTC)
        anchor = None if anchor is None else anchor.astimezone(UTC)
        if anchor is not None and definition.task.spec.suspend:
            self._last[key] = anchor
            return NOTHING
        self._last[key] = max(until, anchor) if anchor else until
        if anchor is None or definition.task.spec.suspend or until <= anchor:
            return NOTHING
        missed = backlog(self._schedule(definition), anchor, until)
        if missed.latest is None:
            # No slot of this definition since the last one: that stays the last, and the next
            # change counts from it, not from the moment of this one.
            self._last[key] = anchor
            return NOTHING
        latest = missed.latest.astimezone(UTC)
        superseded = None
        if missed.superseded and missed.last_superseded is not None:
            superseded = Superseded(
                missed.superseded,
                anchor,
                latest,
                missed.last_superseded.astimezone(UTC),
                more=missed.more,
            )
        return CatchUp(superseded, latest)

    def _schedule(self, definition: Definition) -> Schedule:
        cached = self._schedules.get(definition.key)
        if cached is None or cached[0] != definition.hash:
            cached = (definition.hash, schedule_of(definition))
            self._schedules[definition.key] = cached
        return cached[1]
