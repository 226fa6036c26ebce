"""Runs stopped, and crontask's own stop, for :class:`~reconciler.controller.dispatch.Dispatcher`.

A run another replica asked to stop, through the store (``stop_run``); the runs of a task
removed, changed or handed over, which do not retry (``cancel_retries``): one that waits lets
go of its slot at once (``_let_go``). Crontask stopping: ``close`` (no new run, nor retry),
``drain`` (every run in flight ended, every record written), and ``shutdown``: the runs get
their grace, then they are stopped; a second stop signal cuts both graces short and kills the
commands still running at once (``_kill_now``; their records say so: ``Dispatcher._complete``),
and cuts the wait for the records the store has not taken (``_close_recorder``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from reconciler.aio import ended, first_of
from reconciler.controller.active import DISOWNED, SHUTDOWN, ActiveRun
from reconciler.controller.bounds import RunBounds
from reconciler.controller.recorder import Recorder
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.runner.command import CommandRun

log = logging.getLogger("crontask")

_KILL_AGAIN = 0.5  # seconds
# Once hurried, how long the records still get: a store that answers takes them in
# milliseconds (a hurried stop must not lose the records of the runs it killed to a healthy
# store), one that does not answer is waited for no longer.
_HURRIED_RECORDS = 1.0  # seconds
# How long a run whose work has ended waits for the store to take its end record before it
# lets go of its task (``_save_end``): a store that answers takes it in milliseconds.
LET_GO_AFTER = 0.5  # seconds


class RunStops:
    """The stops of :class:`~reconciler.controller.dispatch.Dispatcher` (a mixin: the
    dispatcher holds the state declared here; ``_undefer`` is ``AheadSlots``')."""

    recorder: Recorder
    bounds: RunBounds
    _active: dict[str, dict[str, ActiveRun]]
    # Record writes not tied to a run (skips); kept so drain() and shutdown can await them.
    _writes: set[asyncio.Task[None]]
    _closing: bool
    # The attempts killed at once by a second stop signal (``_kill_now``).
    _killed: set[tuple[str, int]]
    _deferred: dict[str, dict[datetime, tuple[asyncio.TimerHandle, Definition]]]
    _undefer: Callable[[str], None]
    _notify: Callable[[RunRecord], None]

    def going(self) -> list[tuple[str, int]]:
        """The runs in flight here, ``(run id, attempt)``: whose stop asked through the store
        is read whatever their records say (``controller.sweep``). A run whose attempt has
        ended waits for its retry: the attempt in flight is that one, not the ended one (a stop
        asked of the ended attempt is not the retry's). Read on the loop."""
        return [
            (run, a.record.attempt + (a.record.status is not RunStatus.RUNNING))
            for by_id in self._active.values()
            for run, a in by_id.items()
        ]

    def begun(self) -> list[tuple[str, int]]:
        """The attempts whose work began here and goes on, ``(run id, attempt)``, not those
        disowned already (``controller.disowned``). Read on the loop."""
        return [
            (run, a.record.attempt)
            for by_id in self._active.values()
            for run, a in by_id.items()
            if a.begun and a.record.status is RunStatus.RUNNING and not a.waiting
            if a.disowned is None
        ]

    def disown(self, ended: RunRecord) -> bool:
        """Stop the attempt ``ended`` is the record of, which another replica ended while this
        one's membership had lapsed: its end is not recorded here, nor does it retry; the
        listeners hear ``ended``, the record that stands (``controller.disowned``). False if it
        is not going here (or was disowned already)."""
        for by_id in self._active.values():
            active = by_id.get(ended.id)
            if active is None or active.record.attempt != ended.attempt or active.disowned:
                continue
            active.disowned = ended
            active.stop(DISOWNED)
            return True
        return False

    def stop_run(self, run: str, reason: str) -> bool:
        """Stop the running run ``run`` (another replica asked, through the store)."""
        for by_id in self._active.values():
            if (active := by_id.get(run)) is not None:
                active.stop(reason)
                return True
        return False

    def cancel_retries(self, key: str, reason: str) -> int:
        """Runs of ``key`` do not retry: each records its abandoned attempt with ``reason``
        (TaskRemoved, TaskChanged, HandedOver), a run waiting for its retry now, a running
        one when its attempt ends (its retry would run the definition it began with, which
        is no longer in force here). Running attempts and runs claimed ahead of their slot go
        on, unless the fence holds them (``_late``); a run that waits to start (for the runs it
        replaces, for its claim) does not start (``_waited``); slots deferred to their instant
        were settled before the job changed (``before_change``). Returns how many will not retry."""
        runs = list(self._active.get(key, {}).values())
        for active in runs:
            if active.waiting:
                active.stop(reason)
                self._let_go(active)
            else:
                active.no_retry = active.no_retry or reason
        return len(runs)

    async def _save_end(self, active: ActiveRun, final: RunRecord, ended: bool) -> RunRecord | None:
        """Write ``final``, a run's end record. A run whose work has ended (``ended``: no retry
        follows) is let go if the store has not taken it within :data:`LET_GO_AFTER`: a store
        slow or away must not hold its task (the next slot skipped under Forbid for a run that
        had ended). Not at once: while the store answers, listeners (the status reporter) hear
        a run's final record before it leaves the active ones. A timer, not a task: this is
        every run's path.

        With replicas, the record another replica marked interrupted (``ProcessDied``: it
        judged this one gone and took the task) may stand instead of ``final``
        (``RunStore.save_many``): returned, for the listeners to hear instead. One found by a
        later write (``final`` was kept: the store was away) is told to them then, after
        ``final``."""
        timer = None
        if ended:
            timer = asyncio.get_running_loop().call_later(LET_GO_AFTER, self._let_go, active)
        stood: list[RunRecord] = []
        answered: list[bool] = []

        def marked(record: RunRecord) -> None:  # before ``save`` answers True, or after False
            _stood(record)
            (self._notify if answered else stood.append)(record)

        try:
            answered.append(await self.recorder.save(final, marked=marked))
        finally:
            if timer is not None:
                timer.cancel()
        return stood[0] if stood else None

    def _let_go(self, active: ActiveRun) -> None:
        """A run that waited (a retry; a first attempt superseded) and will not start, or one
        whose work has ended (its end record on its way), holds its slot no longer: a run
        asked for in the same turn (a catch-up, a later slot, a manual run) is not refused for
        it by the concurrency policy, though its task wakes on a later turn to record its
        attempt; drain and shutdown wait for that task as for a record's write."""
        record = active.record
        runs = self._active.get(record.task, {})
        if runs.get(record.id) is active:
            del runs[record.id]
            if not runs:
                self._active.pop(record.task, None)
        self.bounds.release(record.id)
        if active.task is not None:
            self._writes.add(active.task)
            active.task.add_done_callback(self._writes.discard)

    # -- waiting and shutdown ----------------------------------------------------------------

    def _in_flight(self) -> list[asyncio.Task[None]]:
        runs = [a.task for by_id in self._active.values() for a in by_id.values() if a.task]
        return runs + list(self._writes)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every run in flight has ended and every record is written; False if
        ``timeout`` passed first."""
        while pending := self._in_flight():
            _, still = await asyncio.wait(pending, timeout=timeout)
            if still:
                return False
        return True

    def close(self) -> None:
        """No new run from now on: crontask begins to stop. Slots handed over later are not
        started (nor recorded: a restart catches them up), nor are those deferred to their
        instant; retries that wait are cancelled (recorded ``interrupted``, reason Shutdown),
        and a running attempt that fails is not retried. Called as soon as the stop is asked,
        before the parts started after the runs (the HTTP server's graceful stop can take
        seconds) have stopped; runs already started go on until ``shutdown``."""
        self._closing = True
        for key in list(self._deferred):
            self._undefer(key)  # not handed over yet: a restart catches them up
        for by_id in self._active.values():
            for active in by_id.values():
                if active.waiting:
                    active.stop(SHUTDOWN)

    async def shutdown(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """Cancel the retries that wait (nothing runs for them; recorded ``interrupted``), let
        running runs finish for up to ``grace`` seconds, then stop them (recorded as
        interrupted, reason Shutdown), and wait for their records to be written (``grace`` again,
        at most). With replicas, a slot's run still waiting for its claim then waits
        ``lane.ANSWER_WAIT`` more at most, and does not start (``controller.not_started``): a
        silent store holds the stop no longer (other claims are answered within it anyway).
        ``hurry`` (a second stop signal) cuts this grace and the kill grace short
        (``_kill_now``), and the records' wait (``_close_recorder``)."""
        self.close()
        for by_id in self._active.values():
            for active in by_id.values():
                # Work that outlives the process (a Job) needs no grace: it is detached now.
                if getattr(active.attempt, "outlives_process", False):
                    active.stop(SHUTDOWN)
        if not await self._drain_unless(grace, hurry):
            for by_id in self._active.values():
                for active in by_id.values():
                    active.stop(SHUTDOWN)
            if not await self._drain_unless(None, hurry):
                # Again while runs remain: a process spawned as the signal came had no pid yet.
                while True:
                    self._kill_now()
                    if await self.drain(_KILL_AGAIN):
                        break
        await self._close_recorder(grace, hurry)

    async def _close_recorder(self, grace: float, hurry: asyncio.Event | None) -> None:
        """Wait up to ``grace`` for the records kept for later (the store unavailable, or slow)
        to be written, then close the recorder: what is left is said, lost or, in a write
        still under way, not confirmed, and makes the exit status 1 unless that write is known
        to have landed when the status is decided (``Recorder.close``, ``controller.lost``).
        ``hurry``, set before or during the wait, leaves the records ``_HURRIED_RECORDS`` more
        at most. ``Recorder.close`` cannot be cut once it waits, so its flush is waited for
        here, beside ``hurry``, and then it is closed without waiting."""
        hurried = hurry is not None and hurry.is_set()
        self.recorder.retry_now()  # the store may be back, in the middle of a long backoff
        if pending := self.recorder.pending:
            log.warning(
                "waiting for the run store to take the records kept for later; a second stop "
                "signal ends the wait",
                extra={
                    "fields": {
                        "records": pending,
                        "seconds": min(grace, _HURRIED_RECORDS) if hurried else grace,
                    }
                },
            )
        if hurry is None:
            await self.recorder.close(timeout=grace)
            return
        flushing = asyncio.ensure_future(self.recorder.flush(grace))
        try:
            await first_of(ended(flushing), hurry)
            if not flushing.done():
                await asyncio.wait({flushing}, timeout=_HURRIED_RECORDS)
        finally:
            # Not left pending at the loop's end ("Task was destroyed but it is pending").
            flushing.cancel()
            await asyncio.wait({flushing})
        if not flushing.cancelled():
            flushing.result()  # an error of the flush, raised as close would have raised it
        await self.recorder.close(timeout=0)

    def _kill_now(self) -> None:
        """SIGKILL the session of every command still running (stopped already: its SIGTERM
        was sent), instead of waiting out its kill grace; its record says so (``_complete``).
        One ``/proc`` census serves every session (``runner.group``)."""
        census = time.monotonic()
        for by_id in self._active.values():
            for active in by_id.values():
                active.stop(SHUTDOWN)
                attempt = active.attempt
                if isinstance(attempt, CommandRun) and attempt.kill_now(fresh_since=census):
                    self._killed.add((active.record.id, active.record.attempt))

    async def _drain_unless(self, grace: float | None, hurry: asyncio.Event | None) -> bool:
        if hurry is None:
            return await self.drain(grace)
        draining = asyncio.ensure_future(self.drain(grace))
        await first_of(ended(draining), hurry)
        if not draining.done():
            draining.cancel()
            return False
        return draining.result()


def _stood(record: RunRecord) -> None:
    log.warning(
        "run's end not recorded: another replica had recorded the run interrupted, having"
        " judged this replica gone; its record stands, and is what the listeners hear",
        extra={"fields": {"task": record.task, "run": record.id, "attempt": record.attempt}},
    )
