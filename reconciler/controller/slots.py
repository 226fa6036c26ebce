"""The slot ledger: every slot of every task accounted for.

Per task it remembers the latest slot handed to the dispatcher (or the instant accounting began:
a task added now, or where a catch-up ended; a suspended task keeps its last slot, which
resuming catches up from), and answers what became of the slots in between, so that nothing is
dropped silently:

- a scheduled slot handed over late (the loop was blocked, the machine suspended) jumps over the
  slots between the previous one and itself: those are **superseded**, one counted skip;
- after downtime (``catch_up``, from the last slot the run store knows), only the latest missed
  slot may run, as a ``catchup``; the older ones are superseded; a task that never ran catches up
  nothing.

The ledger only decides; the dispatcher records and runs. No I/O, no clock of its own. Every
instant it hands out is in UTC (a schedule answers in its own zone): run ids and records are
made from them, and two datetimes of one zone compare by wall time, ignoring ``fold``, so 02:30
before and after clocks go back would be one slot.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from reconciler.core.desired import Definition
from reconciler.core.schedule import Schedule
from reconciler.core.timing import backlog
from reconciler.scheduling.base import schedule_of


@dataclasses.dataclass(frozen=True, slots=True)
class Superseded:
    """``count`` slots after ``after`` and before ``latest`` did not run; ``name`` (the newest
    of them) names their one skip record."""

    count: int
    after: datetime
    latest: datetime
    name: datetime
    more: bool = False  # more than ``count`` (the most counted one by one)


@dataclasses.dataclass(frozen=True, slots=True)
class CatchUp:
    superseded: Superseded | None  # older missed slots, to record as one skip
    latest: datetime | None  # the missed slot that may still run, as a catchup


NOTHING = CatchUp(None, None)


class SlotLedger:
    def __init__(self) -> None:
        self._last: dict[str, datetime] = {}
        # Parsed schedules by task, valid while the spec hash matches (parsing costs more than
        # the slot arithmetic it serves, at every fire).
        self._schedules: dict[str, tuple[str, Schedule]] = {}

    def last_slot(self, key: str) -> datetime | None:
        return self._last.get(key)

    def track(self, key: str, since: datetime) -> None:
        """Count the slots of ``key`` from ``since`` on (a task added or changed now)."""
        self._last[key] = since.astimezone(UTC)

    def forget(self, key: str) -> None:
        self._last.pop(key, None)
        self._schedules.pop(key, None)

    def handed(self, definition: Definition, slot: datetime) -> Superseded | None:
        """A scheduled ``slot`` is being handed over: the slots it jumped over, if any."""
        key = definition.key
        slot = slot.astimezone(UTC)
        last = self._last.get(key)
        self._last[key] = max(slot, last) if last else slot
        if last is None or slot <= last:
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
        is what resuming catches up, however many passes (edits, a restart) come between."""
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
