"""One run of a task, from its claim to its record: the half of the dispatcher that executes.

The dispatcher (``controller.dispatch``) decides on the loop what a slot becomes; a run it
starts is carried through here: look in the shared store first for a task inherited from
another replica, claim the slot (the store refuses a second claim: the slot is not run twice),
run the attempt through the task's action, record its end, and retry as the task's policy says
(each retry an attempt of the same run; a retry that will not happen is recorded with why).
Every record written is handed to the listeners, each isolated from the others; the end of an
attempt that the run retries as a ``RetriedAttempt``, so that they follow the dispatcher's
decision rather than make their own (``_complete``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from reconciler.controller.handover import Handover
from reconciler.controller.recorder import Recorder
from reconciler.controller.slots import SlotLedger
from reconciler.core.desired import Definition
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import RetriedAttempt, RunRecord, RunStatus, Trigger
from reconciler.core.timing import retry_delay
from reconciler.runner.base import Actions, Attempt, Outcome, Resumable, StartsAt, failed
from reconciler.store.base import DuplicateRun, StoreUnavailable

log = logging.getLogger("crontask.runner")

SHUTDOWN = "Shutdown"
REPLACED = "Replaced"
TASK_REMOVED = "TaskRemoved"
TASK_CHANGED = "TaskChanged"
HANDED_OVER = "HandedOver"
# Why a slot was not started: its claim could not be checked (see ``_unchecked``).
STORE_UNAVAILABLE = "StoreUnavailable"

# Why a retry did not start, as its attempt's record says it.
_ABANDONED = {
    SHUTDOWN: "crontask stopped while this retry waited",
    REPLACED: "a newer slot replaced the run while this retry waited",
    TASK_REMOVED: "the task was removed before this retry could start",
    TASK_CHANGED: "the task's definition changed before this retry could start",
    HANDED_OVER: "the task moved to another replica before this retry could start",
}


@dataclasses.dataclass(eq=False)
class ActiveRun:
    record: RunRecord
    attempt: Attempt | None = None
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    # Why the run does not retry when its running attempt ends (its task was removed or
    # changed meanwhile: ``Dispatcher.cancel_retries``); the attempt itself goes on.
    no_retry: str | None = None
    waiting: bool = False  # between two attempts: nothing is running
    begun: bool = False  # the current attempt's work began (``_begin``)
    # The attempt's claim, when it was sent before: as the slot fired, or a retry's that
    # looks for another replica's run first (``_claim_retry``).
    claim: asyncio.Future[bool] | None = None
    # When the first attempt may begin (the loop's clock): its slot, when it was handed over
    # ahead of it; None: at once.
    start_at: float | None = None
    # Made only when a retry waits (most runs never need one).
    _stopped: asyncio.Event | None = None

    def stop(self, reason: str) -> None:
        """Stop the run, also when its process has not been spawned yet (its claim may still
        be on its way to the store) or while it waits for a retry: the reason is kept and
        applied as soon as there is something to stop."""
        self.stop_reason = self.stop_reason or reason
        if self._stopped is not None:
            self._stopped.set()
        if self.attempt is not None:
            self.attempt.stop(self.stop_reason)

    async def wait_stopped(self, seconds: float | None) -> bool:
        """Wait up to ``seconds`` (None: until stopped); True if the run was stopped before
        or meanwhile."""
        if self.stop_reason is not None:
            return True
        if self._stopped is None:
            self._stopped = asyncio.Event()
        self.waiting = True
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self.waiting = False
        return True


RunListener = Callable[[RunRecord], None]


class RunExecution:
    """The execution half of :class:`~reconciler.controller.dispatch.Dispatcher` (a mixin: the
    dispatcher holds the state declared here)."""

    recorder: Recorder
    actions: Actions
    owner: str
    clock: Callable[[], datetime]
    handover: Handover | None
    resumable: Resumable | None
    _active: dict[str, dict[str, ActiveRun]]
    _listeners: list[RunListener]
    _progress_listeners: list[RunListener]
    _writes: set[asyncio.Task[None]]
    _closing: bool
    _may_start: asyncio.Event
    paused: str | None
    owns: Callable[[str], bool]
    fence: Callable[[], None]
    ledger: SlotLedger
    unstarted: set[str]

    def _skip(self, record: RunRecord, reason: str, message: str) -> RunRecord:
        skipped = dataclasses.replace(
            record,
            status=RunStatus.SKIPPED,
            started_at=None,
            finished_at=record.started_at,
            reason=reason,
            message=message,
        )
        log.info(
            "slot skipped",
            extra={"fields": {"task": record.task, "run": record.id, "reason": reason}},
        )
        write = asyncio.get_running_loop().create_task(self._add(skipped))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        return skipped

    # -- one run ---------------------------------------------------------------------------

    async def _execute(
        self,
        definition: Definition | None,
        active: ActiveRun,
        replaced: list[ActiveRun],
        *,
        adopted: bool = False,
    ) -> None:
        try:
            for old in replaced:
                if old.task is not None:
                    await asyncio.shield(old.task)
            while True:
                final = await self._run_attempt(definition, active, adopted=adopted)
                adopted = False
                if definition is None or not isinstance(final, RetriedAttempt):
                    return  # as the listeners heard it (``_retries``)
                delay = retry_delay(definition.task.spec.retry, final.attempt)
                if active.no_retry is not None:
                    active.stop(active.no_retry)  # recorded below as the retry not started
                if active.stop_reason is None:
                    log.info(
                        "retry scheduled",
                        extra={
                            "fields": {
                                "task": final.task,
                                "run": final.id,
                                "attempt": final.attempt + 1,
                                "in_seconds": delay,
                            }
                        },
                    )
                following = final.following()
                if self._closing:
                    # Shutdown began while this attempt was being recorded: it stopped only the
                    # retries waiting then, and this one would wait out the whole grace.
                    active.stop(SHUTDOWN)
                # Stopped while the attempt's end was being recorded, or while the retry
                # waits: the retry that will not happen is recorded as its attempt.
                if await active.wait_stopped(delay) or await self._held(active, following):
                    await self._abandon(following, active.stop_reason or SHUTDOWN)
                    return
                active.attempt, active.begun = None, False
                active.record = dataclasses.replace(following, started_at=self.clock())
                active.claim = self._claim_retry(definition, active.record)
        finally:
            record = active.record
            runs = self._active.get(record.task, {})
            runs.pop(record.id, None)
            if not runs:
                self._active.pop(record.task, None)

    async def _held(self, active: ActiveRun, following: RunRecord) -> bool:
        """A retry due while this replica may not start runs (it lost its membership) waits
        until it may again, still holding its slot; True if the run was stopped meanwhile (its
        task moved to another replica, shutdown), when it is recorded as not started."""
        self.fence()  # the renew deadline may have passed while this process was not running
        if self.paused is None:
            return False
        log.warning(
            "retry held: this replica may not start runs now",
            extra={
                "fields": {
                    "task": following.task,
                    "run": following.id,
                    "attempt": following.attempt,
                    "reason": self.paused,
                }
            },
        )
        resumed = asyncio.ensure_future(self._may_start.wait())
        stopped = asyncio.ensure_future(active.wait_stopped(None))
        try:
            await asyncio.wait({resumed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            resumed.cancel()
            stopped.cancel()
        if active.stop_reason is None and not self.owns(following.task):
            active.stop(HANDED_OVER)  # it moved while the fence held it: its new owner's now
        return active.stop_reason is not None

    async def _abandon(self, attempt: RunRecord, reason: str) -> None:
        """A retry that was waiting will not start: its attempt is recorded with the reason
        (``interrupted`` at shutdown, else ``skipped``), so the history says why it stopped."""
        why = _ABANDONED.get(reason, f"stopped ({reason}) while this retry waited")
        status = RunStatus.INTERRUPTED if reason == SHUTDOWN else RunStatus.SKIPPED
        record = dataclasses.replace(
            attempt,
            status=status,
            started_at=None,
            finished_at=self.clock(),
            reason=reason,
            message=f"{why}; it did not start",
        )
        log.info(
            "retry cancelled",
            extra={
                "fields": {
                    "task": record.task,
                    "run": record.id,
                    "attempt": record.attempt,
                    "reason": reason,
                }
            },
        )
        await self.recorder.save(record)
        self._notify(record)

    async def _run_attempt(
        self, definition: Definition | None, active: ActiveRun, *, adopted: bool = False
    ) -> RunRecord | None:
        """Claim, run and complete one attempt; None if another instance holds the slot (or,
        adopted, recorded its end already), or if the attempt detached."""
        if adopted:
            return await self._follow_adopted(definition, active)
        record = active.record
        claimed, active.claim = active.claim, None
        try:
            checked = await (claimed or self._claim(record))
        except DuplicateRun:
            log.info(
                "slot already claimed by another instance",
                extra={
                    "fields": {"task": record.task, "run": record.id, "attempt": record.attempt}
                },
            )
            return None
        except Exception:
            # An unexpected store error must not cost the run either: it still runs, and its
            # whole record is written when it ends.
            log.exception(
                "could not record run start; running it anyway",
                extra={"fields": {"task": record.task, "run": record.id}},
            )
        else:
            if not checked and not self._keeps_claim(record):
                self._unchecked(record)
                return None
        assert definition is not None  # only adopted runs come without one
        return await self._complete(definition, active, await self._attempt(definition, active))

    def closing(self) -> bool:
        """Whether crontask is stopping (``Dispatcher.close`` was called)."""
        return self._closing

    def _claim_retry(
        self, definition: Definition, record: RunRecord
    ) -> asyncio.Future[bool] | None:
        """With replicas, under Forbid and Replace, a retry's claim looks for a run of its
        task going on another replica, as a first attempt's does (``handover.py``): a replica
        whose membership lapsed (paused, cut off) may find the task's new owner running it,
        another replica a manual run. Forbid: the retry is recorded skipped and is not run
        (DuplicateRun); Replace: that run is stopped first. None: the ordinary claim."""
        policy = definition.task.spec.concurrency_policy
        if self.handover is None or policy is ConcurrencyPolicy.ALLOW:
            return None
        return self._claim_exclusive(record, policy)

    def _claim_exclusive(
        self, record: RunRecord, policy: ConcurrencyPolicy
    ) -> asyncio.Future[bool]:
        """``record``'s claim, unless a run of its task is going on another replica
        (``Handover.claim``), with what ``_claim`` says: True, False (the store is
        unavailable), or DuplicateRun (do not run it; under Forbid the skip is recorded
        first)."""
        handover = self.handover
        assert handover is not None

        async def claim() -> bool:
            try:
                why = await handover.claim(record, policy, REPLACED, self.closing)
            except StoreUnavailable:
                return await self._claim(record)  # as any claim the store cannot answer
            if why is not None:
                self._skip(record, "ConcurrencyForbid", why)
                raise DuplicateRun(record.id, record.attempt)
            return True

        claimed = asyncio.ensure_future(claim())
        claimed.add_done_callback(lambda done: done.cancelled() or done.exception())
        return claimed

    def _claim(self, record: RunRecord) -> asyncio.Future[bool]:
        return self.recorder.claim_soon(record, keep=self._keeps_claim(record))

    def _keeps_claim(self, record: RunRecord) -> bool:
        """Whether a run whose claim the store could not answer runs anyway, its records kept
        for later: without replicas, nobody else can run its slot. With replicas, a slot's can
        be run by the replica that takes the task over (it catches up the slots it finds no
        record of); a manual run's id is this replica's alone, and so are further attempts of
        a run begun here."""
        return self.handover is None or record.trigger in (Trigger.MANUAL, Trigger.RETRY)

    def _unchecked(self, record: RunRecord) -> None:
        """With replicas, a slot whose claim could not be checked (the store is unavailable)
        is not run here: nor recorded, as a record from here could only take the slot's id
        and hide it from the catch-up of whoever owns the task once the store answers. If
        the task moves (this replica's membership lapses), its new owner catches the slot
        up; if it stays, this replica does (``unstarted``: see ``controller.cluster``). The
        store's claim decides which of them runs it."""
        key = record.task
        log.warning(
            "slot not started: its claim could not be checked",
            extra={"fields": {"task": key, "run": record.id, "reason": STORE_UNAVAILABLE}},
        )
        self.unstarted.add(key)
        # The ledger counts from this slot, handed over: from just before it now, so that the
        # catch-up finds it missed.
        last = self.ledger.last_slot(key)
        before = record.scheduled_at - timedelta(microseconds=1)
        if last is not None and last > before:
            self.ledger.track(key, before)

    async def _follow_adopted(
        self, definition: Definition | None, active: ActiveRun
    ) -> RunRecord | None:
        """An adopted run: make its record this process's, then follow its work to the end."""
        assert self.resumable is not None
        record = active.record
        try:
            stored = await self.recorder.call(
                self.recorder.store.take_over, record.id, record.attempt, self.owner
            )
        except Exception:
            log.exception("could not take the adopted run over; following it anyway")
            stored = None
        if stored is not None and stored.status.finished:
            return None  # its end is recorded already (by whoever followed it)
        if stored is not None:
            record = active.record = dataclasses.replace(stored, job=record.job or stored.job)
        self._notify(record, self._progress_listeners)
        active.begun = True  # its work began elsewhere, before
        attempt = self.resumable.resume(record)
        active.attempt = attempt
        if active.stop_reason is not None:
            attempt.stop(active.stop_reason)
        try:
            outcome = await attempt.run()
        except Exception as err:
            log.exception("adopted run failed unexpectedly", extra={"fields": {"run": record.id}})
            outcome = failed("ActionError", f"the action failed unexpectedly: {err!r}"[:500])
        return await self._complete(definition, active, outcome)

    async def _complete(
        self, definition: Definition | None, active: ActiveRun, outcome: Outcome
    ) -> RunRecord | None:
        """Record the attempt's end and hand it to the listeners; a :class:`RetriedAttempt`
        when the run tries again (``_retries``), which ``_execute`` then does: the listeners
        (the notifier) hear the decision the dispatcher follows, never one of their own."""
        record = active.record
        if outcome.detached:
            log.info(
                "run detached: its work goes on outside crontask",
                extra={"fields": {"task": record.task, "run": record.id, "why": outcome.reason}},
            )
            return None
        status = RunStatus.INTERRUPTED if outcome.reason == SHUTDOWN else outcome.status
        if not active.begun:
            # Its work never began (stopped first, or it could not start): it has no start,
            # not the slot it was decided for, which may be after the end.
            record = dataclasses.replace(record, started_at=None)
        final = record.finish(
            status,
            finished_at=self.clock(),
            exit_code=outcome.exit_code,
            reason=outcome.reason,
            message=outcome.message,
            output=outcome.output,
            job=outcome.job,
        )
        log.info(
            "run finished",
            extra={
                "fields": {
                    "task": record.task,
                    "run": record.id,
                    "attempt": record.attempt,
                    "status": str(final.status),
                    "exit_code": final.exit_code,
                    "duration_ms": final.duration_ms,
                    # Why, when it did not succeed: the log alone says it (a spawn refused for
                    # want of a process, of a descriptor); the message is crontask's own line.
                    **(
                        {}
                        if final.status is RunStatus.SUCCEEDED
                        else {"reason": final.reason, "message": (final.message or "")[:200]}
                    ),
                }
            },
        )
        await self.recorder.save(final)  # as it is: the store keeps nothing of the decision
        if self._retries(definition, active, final):
            final = RetriedAttempt.of(final)
        self._notify(final)
        return final

    @staticmethod
    def _retries(definition: Definition | None, active: ActiveRun, final: RunRecord) -> bool:
        """Whether a further attempt of ``final``'s run follows (or, if it will not start after
        all, is recorded as abandoned): a failed or timed-out attempt within the retry limit of
        the definition the run began with (not the one in force now: its retry would run the
        old one), unless the attempt itself was stopped (its record says why)."""
        if definition is None or final.status not in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            return False
        if active.stop_reason is not None and final.reason == active.stop_reason:
            return False
        return final.attempt <= definition.task.spec.retry.limit

    async def _attempt(self, definition: Definition, active: ActiveRun) -> Outcome:
        record = active.record
        start_at, active.start_at = active.start_at, None  # a retry starts when it is due
        try:
            attempt = self.actions.attempt(definition, record)
            active.attempt = attempt
            if active.stop_reason is not None:
                attempt.stop(active.stop_reason)  # run() then reports it without starting
            if isinstance(attempt, StartsAt):
                # It waits itself, to the microsecond, and says when its process started.
                attempt.start_at(start_at, lambda at: self._begin(active, at))
            else:
                loop = asyncio.get_running_loop()
                if start_at is not None and (wait := start_at - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if active.stop_reason is None:
                    self._begin(active, loop.time())
            return await attempt.run()
        except Exception as err:
            # A bug of an action must cost one attempt, never the dispatcher or other runs.
            log.exception(
                "action failed unexpectedly",
                extra={"fields": {"task": record.task, "run": record.id}},
            )
            return failed("ActionError", f"the action failed unexpectedly: {err!r}"[:500])

    def _begin(self, active: ActiveRun, at: float) -> None:
        """The attempt's work began at ``at`` (the loop's clock; for a command, the instant its
        process started): the record's start says so from now on (the decision came first,
        and for a run decided ahead, its slot; a busy machine starts the work later), the log
        says "run started", and the listeners hear it (the start delay in the metrics is
        derived from it)."""
        record = active.record
        ago = max(asyncio.get_running_loop().time() - at, 0.0)
        began = self.clock() - timedelta(seconds=ago)
        active.begun = True
        if record.started_at is not None and began > record.started_at:
            record = active.record = dataclasses.replace(record, started_at=began)
        log.info(
            "run started",
            extra={"fields": {"task": record.task, "run": record.id, "trigger": record.trigger}},
        )
        self._notify(record)

    async def _add(self, record: RunRecord) -> None:
        if await self.recorder.add(record):
            self._notify(record)

    def _notify(self, record: RunRecord, listeners: list[RunListener] | None = None) -> None:
        for listener in self._listeners if listeners is None else listeners:
            try:
                listener(record)
            except Exception:
                log.exception(
                    "run listener failed",
                    extra={"fields": {"run": record.id, "listener": _name(listener)}},
                )


def _name(listener: RunListener) -> str:
    return getattr(listener, "__qualname__", None) or type(listener).__name__
