"""One run of a task, from its claim to its record: the half of the dispatcher that executes.

The dispatcher (``controller.dispatch``) decides on the loop what a slot becomes; a run it
starts is carried through here: claim the slot (``controller.claims``: the store refuses a
second claim, so the slot is not run twice), run the attempt through the task's action, record
its end, and retry as the task's policy says (each retry an attempt of the same run; a retry
that will not happen is recorded with why). A run decided and claimed ahead of its slot is
looked at again as its slot comes: this process may have been away since (``_late``, in
``controller.late_starts``); one decided at its slot, once its claim is in (it may have waited
for the runs it replaces, or for the store: ``_waited``). Every
record written is handed to the listeners, each isolated from the others; the end of an
attempt that the run retries as a ``RetriedAttempt``, so that they follow the dispatcher's
decision rather than make their own (``_complete``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Final

from reconciler.controller.active import HANDED_OVER, REPLACED, SHUTDOWN, ActiveRun, Start
from reconciler.controller.bounds import RunBounds
from reconciler.controller.claims import SkippedHere
from reconciler.controller.late_starts import LateStarts, patience
from reconciler.controller.not_started import NotStarted, what
from reconciler.controller.recorder import Recorder
from reconciler.controller.skips import SlotSkips
from reconciler.core.desired import Definition
from reconciler.core.jobs import TERMINATING
from reconciler.core.runs import JOB_DELETED, RetriedAttempt, RunRecord, RunStatus
from reconciler.core.timing import retry_delay
from reconciler.runner.base import TOO_LATE, Actions, Outcome, Resumable, failed, starts_at
from reconciler.runner.command_outcome import not_started
from reconciler.runner.job_end import DEADLINE_EXCEEDED, JobEnd
from reconciler.store.base import DuplicateRun

log = logging.getLogger("crontask.runner")

# The reasons of failed attempts whose outcome is unknown: their work may have run to its end
# (a Job deleted before its end was seen), so a retry could run it twice. Never retried, as an
# attempt whose process died is not (it is recorded ``interrupted``).
_UNKNOWN_OUTCOMES = frozenset({JOB_DELETED})
# The reasons of attempts crontask stopped for good, whose work it deleted (or went on trying
# to): a run adopted with such an end recorded is stopped again (``_follow_adopted``).
_STOPPED_FOR_GOOD = frozenset({REPLACED, DEADLINE_EXCEEDED})

RunListener = Callable[[RunRecord], None]
# A followed Job's end seen this much after the Job's own account is taken from the Job: within
# it, the end seen here is the better one (to the millisecond, where the Job's is to the second).
SEEN_LATE: Final = timedelta(seconds=5)


class RunExecution(NotStarted, LateStarts, SlotSkips):
    """The execution half of :class:`~reconciler.controller.dispatch.Dispatcher` (a mixin over
    :class:`~reconciler.controller.not_started.NotStarted` (runs that do not start, and
    :class:`~reconciler.controller.claims.SlotClaims`),
    :class:`~reconciler.controller.late_starts.LateStarts` and
    :class:`~reconciler.controller.skips.SlotSkips`: the dispatcher holds the state declared
    here)."""

    recorder: Recorder
    actions: Actions
    owner: str
    clock: Callable[[], datetime]
    resumable: Resumable | None
    _active: dict[str, dict[str, ActiveRun]]
    bounds: RunBounds
    _listeners: list[RunListener]
    _progress_listeners: list[RunListener]
    _writes: set[asyncio.Task[None]]
    _closing: bool
    _may_start: asyncio.Event
    paused: str | None
    owns: Callable[[str], bool]
    fence: Callable[[], None]
    _let_go: Callable[[ActiveRun], None]
    _save_end: Callable[[ActiveRun, RunRecord, bool], Coroutine[Any, Any, RunRecord | None]]
    # What an attempt's end waits for before it is recorded (``controller.disowned``).
    before_end: Callable[[ActiveRun], Coroutine[Any, Any, None]] | None = None

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
                # One waiting for its claim never starts now: nothing of it is to be waited for.
                if old.task is not None and not old.claiming:
                    await active.outwait(old.task)  # stopped meanwhile: it never begins
            if replaced and self._closing:
                # crontask began to stop while this run waited for the runs it replaces (up to
                # their kill grace): it starts nothing new, and is recorded as a waiting retry
                # is then (``interrupted``, Shutdown: ``_waited``), once its claim is in.
                active.stop(SHUTDOWN)
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
                active.attempt, active.begun, active.start_at = None, False, None
                active.record = dataclasses.replace(following, started_at=self.clock())
                active.claim = self._claim_retry(definition, active.record)
        finally:
            self._unrecorded(active)  # not begun, nor said so (a skip says it as recorded)
            record = active.record
            runs = self._active.get(record.task, {})
            if runs.get(record.id) is active:  # not let go already (``_let_go``)
                del runs[record.id]
            self.bounds.release(record.id)
            self.turned_away_end(active)  # not superseded: the slot kept for it is skipped
            if not runs:
                self._active.pop(record.task, None)

    async def _held(self, active: ActiveRun, following: RunRecord) -> bool:
        """A retry (or a run decided ahead: ``_late``) due while this replica may not start
        runs (it lost its membership) waits until it may again, still holding its slot; True
        if the run was stopped meanwhile (its task moved to another replica, shutdown), when
        it is recorded as not started."""
        self.fence()  # the renew deadline may have passed while this process was not running
        if self.paused is None:
            return False
        log.warning(
            f"{what(following)} held: this replica may not start runs now",
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

    async def _run_attempt(
        self, definition: Definition | None, active: ActiveRun, *, adopted: bool = False
    ) -> RunRecord | None:
        """Claim, run and complete one attempt; None if another instance holds the slot (or,
        adopted, recorded its end already), if the attempt detached, or if it does not start
        after all (``_waited``, ``_late``; or stopped before it began: its record says why)."""
        if adopted:
            return await self._follow_adopted(definition, active)
        record = active.record
        claimed, active.claim = active.claim, None
        active.claiming = True
        keeps = self._keeps_claim(record)
        try:
            # One not sent at the decision (Replace's, after the wait) starts now, as listed.
            claim = claimed or self._claim(record.begun_by(self.clock()))
            # Only a claim the recorder does not keep waits for the store's own answer however
            # late (``lane``): a stop may end that wait. Others are answered within the lane's
            # ANSWER_WAIT anyway, and are awaited as they are (one loop callback a run less).
            checked = await (self._await_claim(active, claim) if not keeps else claim)
        except SkippedHere:
            return None  # its skip is recorded, and logged as any skip is
        except DuplicateRun:
            self._claimed_elsewhere(record)
            return None
        except Exception:
            fields = {"task": record.task, "run": record.id}
            if not keeps:
                # With replicas an unchecked slot is not run here, whatever left it unchecked.
                log.exception("slot not started: its claim failed", extra={"fields": fields})
                self._unchecked(record)
                return None
            # An unexpected store error must not cost the run either: it still runs, and its
            # whole record is written when it ends.
            log.exception("could not record run start; running it anyway", extra={"fields": fields})
        else:
            if checked is None:
                return None  # stopped before its claim was answered: not started
            if not checked and not self._keeps_claim(record):
                self._unchecked(record)
                return None
        finally:
            active.claiming = False
        assert definition is not None  # only adopted runs come without one
        if active.start_at is None and await self._waited(definition, active):
            return None  # it may no longer start, after its wait: its record says why
        outcome = await self._attempt(definition, active)
        if outcome is None:
            return None
        if (reason := active.stop_reason) is not None and _never_began(active, outcome):
            # Stopped while its command waited for its slot (decided ahead): as a run stopped
            # before its attempt was made (``_late``), nothing of it ran.
            await self._abandon(active.record, reason)
            return None
        return await self._complete(definition, active, outcome)

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
        fields = {"task": record.task, "run": record.id, "attempt": record.attempt}
        if stored is not None and stored.status.finished:
            # One being deleted already (a finalizer holds it): its delete was answered, and
            # sending it again at every slot it holds only said so again (``Forbid`` counts it).
            if stored.reason in _STOPPED_FOR_GOOD and record.reason != TERMINATING:
                # Recorded stopped, yet its work lives: the delete that stopped it was refused
                # until the crontask that asked went (``runner.job_attempt``). Stopped now; its
                # record stays as it is. Its Job holds the task's slot meanwhile (Forbid).
                log.info(
                    "the Job of a run recorded over still runs; deleting it again",
                    extra={"fields": {**fields, "status": str(stored.status)}},
                )
                attempt = self.resumable.resume(record)
                attempt.stop(stored.reason or REPLACED)
                await attempt.run()
            return None  # its end is recorded already (by whoever followed it)
        if stored is not None:
            record = active.record = dataclasses.replace(stored, job=record.job or stored.job)
        log.info("run adopted", extra={"fields": fields})
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
        (the notifier) hear the decision the dispatcher follows, never one of their own.
        It ends now, unless its outcome says when its work ended (a Job's own end, ``JobEnd``:
        adopted, maybe while no crontask followed it; followed, seen more than ``SEEN_LATE``
        after it, through an API outage or a watch gap); then never later than now nor before
        the record's start, as that end is on another clock (the API server's)."""
        record = active.record
        if outcome.detached:
            log.info(
                "run detached: its work goes on outside crontask",
                extra={"fields": {"task": record.task, "run": record.id, "why": outcome.reason}},
            )
            return None
        if self.before_end is not None:
            await self.before_end(active)  # after a lapse: whether it is still this replica's
        if active.disowned is not None:  # the record another replica wrote stands (disowned.py)
            log.info(
                "run ended here, not recorded: another replica recorded its end",
                extra={"fields": {"task": record.task, "run": record.id, "reason": outcome.reason}},
            )
            self._notify(active.disowned)
            return None
        status = RunStatus.INTERRUPTED if outcome.reason == SHUTDOWN else outcome.status
        if not active.begun:
            # Its work never began (stopped first, or it could not start): it has no start,
            # not the slot it was decided for, which may be after the end.
            record = dataclasses.replace(record, started_at=None)
        finished_at = now = self.clock()
        ended = _job_end(outcome, record.started_at, now) if isinstance(outcome, JobEnd) else None
        if ended is not None:
            finished_at = min(now, max(ended, record.started_at or ended))
        final = record.finish(
            status,
            finished_at=finished_at,
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
        retried = outcome.retryable and self._retries(definition, active, final)
        if not active.begun:  # its process did not start: a manual Replace run's answer
            active.not_begun(None if retried else final, _retrying(final) if retried else None)
        # As it is: the store keeps nothing of the decision.
        if (stood := await self._save_end(active, final, not retried)) is not None:
            self._notify(stood)  # another replica's mark stands (RunStops): no retry here
            return None
        if retried:
            final = RetriedAttempt.of(final)
        self._notify(final)
        return final

    @staticmethod
    def _retries(definition: Definition | None, active: ActiveRun, final: RunRecord) -> bool:
        """Whether a further attempt of ``final``'s run follows (or, if it will not start after
        all, is recorded as abandoned): a failed or timed-out attempt within the retry limit of
        the definition the run began with (not the one in force now: its retry would run the
        old one), unless the attempt itself was stopped (its record says why) or its outcome is
        unknown (``_UNKNOWN_OUTCOMES``: a retry could run the slot's work twice)."""
        if definition is None or final.status not in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            return False
        if active.stop_reason is not None and final.reason == active.stop_reason:
            return False
        if final.reason in _UNKNOWN_OUTCOMES:
            return False
        return final.attempt <= definition.task.spec.retry.limit

    async def _attempt(self, definition: Definition, active: ActiveRun) -> Outcome | None:
        """The attempt's outcome; None if, decided ahead, it does not start after all
        (``_late``: its record says why)."""
        record = active.record
        # Kept on ``active`` until it begins (a retry starts when it is due: ``_execute``):
        # what says a later slot may supersede it (``supersede_ahead``).
        start_at = active.start_at
        try:
            attempt = self.actions.attempt(definition, record)
            active.attempt = attempt
            if active.stop_reason is not None:
                attempt.stop(active.stop_reason)  # run() then reports it without starting
            if starts_at(attempt):
                # It waits itself, to the microsecond, and says when its process started; not
                # so late that this process must have been away (then it is looked at again).
                if start_at is not None and await self._late(definition, active, start_at):
                    return None
                until = None if start_at is None else start_at + patience(definition)
                attempt.start_at(start_at, lambda at: self._begin(active, at), until)
                outcome = await attempt.run()
                if outcome.reason != TOO_LATE or start_at is None or active.begun:
                    return outcome
                if await self._late(definition, active, start_at):
                    return None
                # Started now on this look, as a run decided at its slot: a later slot no
                # longer supersedes it (its start, off the loop, would race the stop).
                active.start_at = None
                attempt = active.attempt = self.actions.attempt(definition, record)
                if active.stop_reason is not None:
                    attempt.stop(active.stop_reason)
                assert starts_at(attempt)
                attempt.start_at(None, lambda at: self._begin(active, at))
            else:
                loop = asyncio.get_running_loop()
                if start_at is not None:
                    if (wait := start_at - loop.time()) > 0:
                        await asyncio.sleep(wait)
                    if await self._late(definition, active, start_at):
                        return None
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
        if active.start is not None:
            active.start.begin(record)  # a manual run's answer: started, and when
        log.info(
            "run started",
            extra={"fields": {"task": record.task, "run": record.id, "trigger": record.trigger}},
        )
        self._notify(record)

    def start_of(self, record: RunRecord) -> Start | None:
        """What says when the manual ``Replace`` run ``record``, just fired, begins
        (``api.run_decision`` waits for it); None if it was not launched (skipped, not
        started), or is not ``Replace`` (answered by its decision)."""
        active = self._active.get(record.task, {}).get(record.id)
        return None if active is None else active.start

    def _notify(self, record: RunRecord, listeners: list[RunListener] | None = None) -> None:
        for listener in self._listeners if listeners is None else listeners:
            try:
                listener(record)
            except Exception:
                log.exception(
                    "run listener failed",
                    extra={"fields": {"run": record.id, "listener": _name(listener)}},
                )


def _retrying(final: RunRecord) -> str:
    """Why a run whose first attempt failed before its process started is not started yet."""
    return (
        f"not started yet: its first attempt failed ({final.reason}: {final.message}); "
        "a retry is scheduled: look at its run"
    )


def _never_began(active: ActiveRun, outcome: Outcome) -> bool:
    """Whether ``outcome`` is of an attempt stopped before anything of it was started: not a
    start that was asked and did not return (it may start yet, and is then killed)."""
    return not active.begun and outcome == not_started(active.stop_reason)


def _name(listener: RunListener) -> str:
    return getattr(listener, "__qualname__", None) or type(listener).__name__


def _job_end(outcome: JobEnd, started: datetime | None, now: datetime) -> datetime | None:
    """A Job's own end, if it is the run's (``_complete``): an adopted Job's, on the API server's
    clock (it may have ended while no crontask ran); a followed Job's, if this crontask saw its
    end more than ``SEEN_LATE`` after it (an API outage, a watch gap). None: it ends now. A
    followed Job was created between its first create's sending and its coming back here
    (``JobEnd.created_within``): its end by its own account is kept within that window plus how
    long it says it ran (the API server's clock may be off; a read that found it minutes later
    leaves a wide window). Counted from the run's start alone, a create answered late (a slow
    API server, a create held and written later) put the end before the Job's own, and a Job
    seen ending at once was taken for one seen late. A window not between the start and now is
    on another clock than the run's: the start and how long it ran stand in."""
    if not outcome.followed:
        return outcome.ended_at
    if outcome.ran_for is None or started is None:
        return None
    ended = started + outcome.ran_for
    if (within := outcome.created_within) is not None and started <= within[0] <= within[1] <= now:
        earliest, latest = within[0] + outcome.ran_for, within[1] + outcome.ran_for
        said = outcome.ended_at or latest
        ended = min(max(said, earliest), latest)
    return ended if now - ended > SEEN_LATE else None
