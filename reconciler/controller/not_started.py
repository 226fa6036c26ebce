"""A run that does not start after all, and what its records say of it.

A retry that waited, a run decided ahead of its slot or one that waited for the runs it replaces
may not start when its time comes (crontask stopping, its task removed, changed or handed over,
a newer slot): its attempt is recorded with why, ``skipped`` (``interrupted`` at shutdown), never
as an attempt that failed (``_abandon``).

A run whose claim the recorder does not keep (with replicas, a slot's: the lane waits for the
store's own answer however late), stopped while it waits for that answer (crontask's stop at the
end of its grace, a second stop signal, a lapse, a newer slot), waits for it ``ANSWER_WAIT`` more
at most (``_await_claim``): a store that answers does so in milliseconds, and the run is recorded
as any run stopped before it started; a store that takes bytes and never answers (PostgreSQL
behind a silent network, a proxy frozen) held the stop for as long as it was silent, since drain
waits for every run. Other claims are answered within the lane's ``ANSWER_WAIT`` anyway, and are
awaited as they are. It starts nothing, and
its claim's answer, when it comes, says what is written (``_claim_left``): taken, or kept for
later (the run would have gone on unchecked), the attempt's record as ``_abandon`` writes it,
after the claim (the recorder writes one batch at a time, in order), so no claim of it is left
``running``; refused, nothing (another instance holds the slot); not checked (with replicas: the
slot is not run unchecked), nothing either, and the slot is caught up as any slot not started
for want of a checked claim. An answer that comes once the recorder is closed is said, not
written (``Recorder.save``), and one that never comes before the process exits leaves no
record from here: the claim either never reached the store, and the slot is caught up by whoever
owns the task next, or it landed, and its ``running`` row is marked ``interrupted`` with the
runs of a replica gone (``controller.sweep``). Either way the slot runs at most once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable
from datetime import datetime

from reconciler.controller.active import (
    HANDED_OVER,
    LAPSED,
    REPLACED,
    SHUTDOWN,
    TASK_CHANGED,
    TASK_REMOVED,
    ActiveRun,
)
from reconciler.controller.claims import SkippedHere, SlotClaims
from reconciler.controller.lane import ANSWER_WAIT
from reconciler.controller.late_starts import NOT_STARTED
from reconciler.controller.skips import SUPERSEDED
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store.base import DuplicateRun

log = logging.getLogger("crontask.runner")

# Why a retry (or a run decided ahead: ``_late``) did not start, as its record says it.
_ABANDONED = {
    SHUTDOWN: "crontask stopped while this {} waited",
    REPLACED: "a newer run of the task replaced the run while this {} waited",
    TASK_REMOVED: "the task was removed before this {} could start",
    TASK_CHANGED: "the task's definition changed before this {} could start",
    HANDED_OVER: "the task moved to another replica before this {} could start",
    # A later slot came (due, or caught up as the fence lifted) while this one waited: only
    # the latest missed slot runs (``supersede_ahead``, ``supersede_held``).
    SUPERSEDED: "a later slot of the task came before this {} could start (only the latest "
    "missed slot runs)",
}


class NotStarted(SlotClaims):
    """Runs that do not start, for :class:`~reconciler.controller.execution.RunExecution` (a
    mixin: the dispatcher holds the state declared here)."""

    clock: Callable[[], datetime]
    owns: Callable[[str], bool]

    def _came_back(self, key: str) -> bool:
        """Whether ``key`` is this replica's, handed away and back: it may never have moved."""
        return self.handover is not None and self.handover.inherited(key) and self.owns(key)

    def _unrecorded(self, active: ActiveRun) -> None:
        """A manual ``Replace`` run that ends here neither begun nor recorded (its claim
        refused: ``DuplicateRun``, as while crontask stops; stopped before its claim was
        answered): its answer says so at once, and why, not ``running`` (``Start.end``)."""
        if active.start is None:
            return
        reason = active.stop_reason or (SHUTDOWN if self._closing else None)
        said = _ABANDONED.get(reason) if reason is not None else None
        # Without a stop's reason the cause may be a claim refused, one never checked, or a
        # record another replica ended: none of them said here, as none is known for sure.
        why = f"{said.format('run')}; " if said else ""
        active.not_begun(None, f"not started, and it will not start: {why}look at its run")

    async def _abandon(self, attempt: RunRecord, reason: str, why: str | None = None) -> None:
        """A retry that was waiting (or a run decided ahead: ``_late``) will not start: its
        attempt is recorded with the reason (``interrupted`` at shutdown, else ``skipped``)
        and ``why`` (by default, what the reason says), so the history says why it stopped."""
        if (active := self._active.get(attempt.task, {}).get(attempt.id)) is not None:
            self._let_go(active)  # it starts nothing now: its task is free while this is written
        kind = what(attempt)
        if reason == HANDED_OVER and why is None and self._came_back(attempt.task):
            why = LAPSED.format(kind)
        if why is None:
            said = _ABANDONED.get(reason)
            why = said.format(kind) if said else f"stopped ({reason}) while this {kind} waited"
        status = RunStatus.INTERRUPTED if reason == SHUTDOWN else RunStatus.SKIPPED
        record = dataclasses.replace(
            attempt,
            status=status,
            started_at=None,
            finished_at=self.clock(),
            reason=reason,
            message=why if why.startswith(NOT_STARTED) else f"{why}; it did not start",
        )
        log.info(
            "retry cancelled" if kind == "retry" else "run not started",
            extra={
                "fields": {
                    "task": record.task,
                    "run": record.id,
                    "attempt": record.attempt,
                    "reason": reason,
                }
            },
        )
        if active is not None:
            active.not_begun(record)  # a manual Replace run's answer: as recorded, at once
        await self.recorder.save(record)
        self._notify(record)

    async def _await_claim(self, active: ActiveRun, claim: asyncio.Future[bool]) -> bool | None:
        """``claim``'s answer (what ``_claim`` says, or raises); None if the run was stopped
        and the answer did not come within ``ANSWER_WAIT`` more: it does not start, and the
        answer is taken when it comes (``_claim_left``)."""
        if not claim.done() and active.stop_reason is None:
            woken = active.woken()
            wake = functools.partial(_wake, woken)
            claim.add_done_callback(wake)
            try:
                await woken
            finally:
                claim.remove_done_callback(wake)
        if not claim.done():
            # Stopped: a store that answers does so in milliseconds, and the run is then
            # recorded as any run stopped before it started (``_waited``); one that does not
            # is waited for no longer.
            await asyncio.wait({claim}, timeout=ANSWER_WAIT)
        if claim.done():
            return claim.result()
        reason = active.stop_reason
        assert reason is not None
        record = active.record
        log.info(
            "run not started: stopped while its claim was unanswered",
            extra={"fields": {"task": record.task, "run": record.id, "reason": reason}},
        )
        why = active.stop_why  # said now: what it depends on may change before the answer
        claim.add_done_callback(functools.partial(self._claim_left, record, reason, why))
        return None

    def _claim_left(
        self, record: RunRecord, reason: str, why: str | None, claim: asyncio.Future[bool]
    ) -> None:
        """The answer to the claim of ``record``'s run, stopped (``reason``, ``why``) before it
        came (``_await_claim``): the attempt's record is written after the claim if the claim
        was taken, or kept to be written; nothing if another instance holds the slot, or if the
        claim could not be checked (with replicas: the slot is caught up, ``_unchecked``)."""
        if claim.cancelled():
            return
        error = claim.exception()
        if isinstance(error, SkippedHere):
            return  # its skip is recorded
        if isinstance(error, DuplicateRun):
            self._claimed_elsewhere(record)
            return
        if not (error is None and claim.result()) and not self._keeps_claim(record):
            self._unchecked(record)
            return
        write = asyncio.get_running_loop().create_task(self._abandon(record, reason, why))
        self._writes.add(write)  # waited for by drain and shutdown, as a skip's
        write.add_done_callback(self._writes.discard)


def _wake(woken: asyncio.Future[None], _: asyncio.Future[bool]) -> None:
    if not woken.done():
        woken.set_result(None)


def what(record: RunRecord) -> str:
    """What ``record`` is, as the log and its record name it."""
    return "retry" if record.attempt > 1 else "run"
