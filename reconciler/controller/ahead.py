"""Slots handed over ahead of their instant (``Dispatcher.due``), and those decided at it.

The scheduler hands a slot over up to ``AHEAD_MAX`` before its instant. A run that can be
decided then is decided and claimed then, its start waiting for the slot (``controller.dispatch``,
*On time*); one whose fate may change until the slot (a run of the task still in progress, a task
inherited from another replica, a pause, a replica past its renew deadline) is deferred to the
slot, and settled first by a pass that changes or removes its task (``before_change``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from reconciler.controller.active import ActiveRun
from reconciler.controller.handover import Handover
from reconciler.core.desired import Definition
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import RunRecord
from reconciler.core.timing import AHEAD_MAX
from reconciler.runner.base import Resumable


class AheadSlots:
    """The hand-off of :class:`~reconciler.controller.dispatch.Dispatcher` (a mixin: the
    dispatcher holds the state declared here, and decides a slot with ``fire``)."""

    clock: Callable[[], datetime]
    paused: str | None
    handover: Handover | None
    resumable: Resumable | None
    _active: dict[str, dict[str, ActiveRun]]
    # Slots handed over ahead that are decided at their instant, by task.
    _deferred: dict[str, dict[datetime, tuple[asyncio.TimerHandle, Definition]]]
    fire: Callable[[Definition, datetime], RunRecord]
    fence: Callable[[], None]

    def due(self, definition: Definition, scheduled_at: datetime) -> None:
        """A scheduled slot, handed over by the scheduler up to ``AHEAD_MAX`` before it.

        A run that can be decided now is: its claim goes to the store at once and its start
        waits for the slot, so its process starts on the slot rather than after the claim.
        What a slot becomes can depend on what happens until then (a run of the task still in
        progress, a task inherited from another replica, a pause): such a slot is decided at
        the slot, by ``fire``, as if handed over then; a pass that changes or removes the
        task meanwhile settles it first (``before_change``). The fence is looked at first: a
        slot handed over by a replica resumed past its renew deadline is deferred to its
        instant, as one handed over while paused is, not decided now and lost (not started
        ahead of its slot, it would be past the catch-up as the fence lifts)."""
        self.fence()
        ahead = (scheduled_at - self.clock()).total_seconds()
        if not 0 < ahead <= AHEAD_MAX or self._decidable_ahead(definition):
            self.fire(definition, scheduled_at)
            return
        key = definition.key
        deferred = self._deferred.setdefault(key, {})
        if (earlier := deferred.pop(scheduled_at, None)) is not None:
            earlier[0].cancel()
        handle = asyncio.get_running_loop().call_later(
            ahead, self._due_now, definition, scheduled_at
        )
        deferred[scheduled_at] = (handle, definition)

    def before_change(self, key: str, *, changed: bool) -> None:
        """The scheduler is about to change (``changed``) or remove the job of ``key``: its
        slots deferred to their instant are not decided later. A changed task's slot whose
        instant has passed (the loop was busy) is decided now, as it stood: the scheduler
        handed it over already, and the changed job starts after it. One still ahead is
        handed over again by the changed job if its schedule still has it."""
        self._undefer(key, decide_due=changed)

    def _decidable_ahead(self, definition: Definition) -> bool:
        key = definition.key
        if self.paused is not None or (self.handover is not None and self.handover.inherited(key)):
            return False
        if self.resumable is not None and self.resumable.running(key):
            return False
        allow = definition.task.spec.concurrency_policy is ConcurrencyPolicy.ALLOW
        return allow or not self._active.get(key)

    def _due_now(self, definition: Definition, scheduled_at: datetime) -> None:
        self._undefer(definition.key, scheduled_at)
        self.fire(definition, scheduled_at)

    def _undefer(self, key: str, slot: datetime | None = None, *, decide_due: bool = False) -> None:
        """Cancel the slots of ``key`` deferred to their instant (``slot``: that one only).
        ``decide_due``: a slot whose instant has passed (the loop was busy until now) is
        decided now, with the definition in force at its instant: the scheduler handed it
        over already, so nothing else would."""
        deferred = self._deferred.get(key)
        if deferred is None:
            return
        due: list[tuple[datetime, Definition]] = []
        for at in [slot] if slot is not None else list(deferred):
            if (entry := deferred.pop(at, None)) is not None:
                entry[0].cancel()
                due.append((at, entry[1]))
        if not deferred:
            del self._deferred[key]
        if decide_due:
            now = self.clock()
            for at, definition in due:
                if at <= now:
                    self.fire(definition, at)
