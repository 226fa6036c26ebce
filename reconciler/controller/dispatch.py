"""The dispatcher: from "a slot is due" to a run record, on the event loop.

``fire`` is called on the event loop by the scheduler and returns at once. It decides, on the
loop and so without races, what the slot becomes (a run, or a skip with its reason) and then
runs the attempt as an asyncio task. Records go through the ``Recorder`` (the store's own
threads, and a retry buffer while it is unavailable), so a slow database never delays the
loop, and a slow task never delays another's start.

Exactly once per slot: the run id is derived from (task key, slot), and a run starts only
after the store has accepted its ``running`` record; a store that refuses (another process
claimed the slot) means this process does not run it.

Work that outlives the process (Kubernetes Jobs, see ``runner.base.Resumable``): the runs a
``resumable`` action reports for a task (its live Jobs) that are not followed here are
*adopted* when the task fires, so the concurrency policy counts them, and ``adopt`` follows the
runs an earlier crontask left ``running``; at shutdown such attempts are detached at once (their
records stay ``running``) rather than given the grace.

Nothing is dropped silently: a slot that does not run leaves a ``skipped`` record with its
reason — ``ConcurrencyForbid``, ``MissedDeadline``, or ``Superseded`` for slots missed while
crontask was down or busy (one record with the count; only the latest missed slot may run, as
a ``catchup``). Retries are further attempts of the same run (same id, ``attempt`` 2, 3, ...);
while a run waits for its next attempt it still occupies its slot for the concurrency policy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from reconciler.controller.handover import Handover
from reconciler.controller.recorder import Recorder
from reconciler.controller.slots import SlotLedger, Superseded
from reconciler.core.desired import Definition
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.core.timing import retry_delay
from reconciler.runner.base import Actions, Attempt, Outcome, Resumable, failed
from reconciler.store.base import DuplicateRun, RunStore

log = logging.getLogger("crontask.runner")

Clock = Callable[[], datetime]

SHUTDOWN = "Shutdown"
REPLACED = "Replaced"
TASK_REMOVED = "TaskRemoved"
TASK_CHANGED = "TaskChanged"
HANDED_OVER = "HandedOver"

# Why a retry that was waiting did not start, as its attempt's record says it.
_ABANDONED = {
    SHUTDOWN: "crontask stopped while this retry waited",
    REPLACED: "a newer slot replaced the run while this retry waited",
    TASK_REMOVED: "the task was removed while this retry waited",
    TASK_CHANGED: "the task's definition changed while this retry waited",
    HANDED_OVER: "the task moved to another replica while this retry waited",
}


@dataclasses.dataclass(eq=False)
class ActiveRun:
    record: RunRecord
    attempt: Attempt | None = None
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    waiting: bool = False  # between two attempts: nothing is running
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

    async def wait_stopped(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if the run was stopped before or meanwhile."""
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


class Dispatcher:
    def __init__(
        self,
        store: RunStore,
        *,
        owner: str,
        actions: Actions,
        clock: Clock = lambda: datetime.now(UTC),
        recorder: Recorder | None = None,
    ) -> None:
        self.recorder = recorder or Recorder(store)
        self.owner = owner
        self.actions = actions
        self.clock = clock
        self.ledger = SlotLedger()
        # With replicas: runs of tasks inherited from another replica (see handover.py).
        self.handover: Handover | None = None
        # Why this process may not start runs now (a replica that lost its membership).
        self.paused: str | None = None
        # The action whose work outlives the process (Jobs), if there is one.
        self.resumable: Resumable | None = None
        self._active: dict[str, dict[str, ActiveRun]] = {}
        self._listeners: list[RunListener] = []
        self._progress_listeners: list[RunListener] = []
        # Record writes not tied to a run (skips); kept so drain() and shutdown can await them.
        self._writes: set[asyncio.Task[None]] = set()

    # -- queries ---------------------------------------------------------------------------

    def active(self, key: str) -> list[RunRecord]:
        return [a.record for a in self._active.get(key, {}).values()]

    def waiting(self, key: str) -> list[RunRecord]:
        """The runs of ``key`` that wait for their next attempt (a retry's backoff)."""
        return [a.record for a in self._active.get(key, {}).values() if a.waiting]

    def active_count(self) -> int:
        return sum(len(runs) for runs in self._active.values())

    def subscribe(self, listener: RunListener) -> None:
        """``listener`` is called on the loop with every record written (start and end). A
        listener that raises is logged and costs nothing else: not the run, not the other
        listeners."""
        self._listeners.append(listener)

    def subscribe_progress(self, listener: RunListener) -> None:
        """``listener`` hears the running records rewritten while they run (a Job's name and
        uid) and the runs adopted (``adopt``): what is no start, and no end."""
        self._progress_listeners.append(listener)

    # -- the hand-off ----------------------------------------------------------------------

    def fire(
        self, definition: Definition, scheduled_at: datetime, trigger: Trigger = Trigger.SCHEDULE
    ) -> RunRecord:
        """Turn a due slot into a run or a recorded skip. Returns the record it starts with."""
        spec = definition.task.spec
        key = definition.key
        now = self.clock()
        if self.paused is not None:
            return self._not_started(definition, scheduled_at, trigger)
        if trigger is Trigger.SCHEDULE and (jumped := self.ledger.handed(definition, scheduled_at)):
            self._skip_slots(definition, jumped)
        record = RunRecord(
            id=run_id(key, scheduled_at),
            task=key,
            scheduled_at=scheduled_at,
            trigger=trigger,
            status=RunStatus.RUNNING,
            started_at=now,
            owner=self.owner,
        )
        late = (now - scheduled_at).total_seconds()
        deadline = spec.starting_deadline_seconds
        if trigger is not Trigger.MANUAL and deadline is not None and late > deadline:
            return self._skip(
                record,
                "MissedDeadline",
                f"started {late:.1f}s late, past startingDeadlineSeconds={deadline}",
            )
        if self.resumable is not None:
            for live in self.resumable.running(key):  # the task's Jobs, from the watch
                self.adopt(definition, live)
        running = self._active.get(key, {})
        policy = spec.concurrency_policy
        if running and policy is ConcurrencyPolicy.FORBID:
            ids = ", ".join(sorted(running))
            return self._skip(
                record, "ConcurrencyForbid", f"previous run still running ({ids}); policy Forbid"
            )
        replaced = list(running.values()) if policy is ConcurrencyPolicy.REPLACE else []
        for old in replaced:
            old.stop(REPLACED)
        active = ActiveRun(record)
        self._active.setdefault(key, {})[record.id] = active
        active.task = asyncio.get_running_loop().create_task(
            self._execute(definition, active, replaced), name=f"run {record.id}"
        )
        return record

    def _not_started(
        self, definition: Definition, scheduled_at: datetime, trigger: Trigger
    ) -> RunRecord:
        """Paused: the slot is neither run nor recorded here. Another replica owns the task by
        now or will catch it up; a record from this one could only take that slot's id."""
        if trigger is Trigger.SCHEDULE:
            self.ledger.handed(definition, scheduled_at)  # no Superseded for it later
        log.warning(
            "slot not started",
            extra={"fields": {"task": definition.key, "reason": self.paused}},
        )
        now = self.clock()
        return RunRecord(
            id=run_id(definition.key, scheduled_at),
            task=definition.key,
            scheduled_at=scheduled_at,
            trigger=trigger,
            status=RunStatus.SKIPPED,
            finished_at=now,
            reason="NotStarted",
            message=f"this replica may not start runs now: {self.paused}",
            owner=self.owner,
        )

    def adopt(self, definition: Definition | None, record: RunRecord) -> bool:
        """Follow a run started before, whose work goes on outside any process (a Job): by an
        earlier crontask, or by another replica. It counts as running for the concurrency
        policy, its end is recorded (the store's record becomes this process's), and a failure
        is retried as ``definition`` says (None: a removed task, no retry). False if it is
        followed here already, or there is no resumable action."""
        if self.resumable is None or record.id in self._active.get(record.task, {}):
            return False
        active = ActiveRun(dataclasses.replace(record, owner=self.owner))
        self._active.setdefault(record.task, {})[record.id] = active
        active.task = asyncio.get_running_loop().create_task(
            self._execute(definition, active, [], adopted=True), name=f"adopted {record.id}"
        )
        log.info(
            "run adopted",
            extra={"fields": {"task": record.task, "run": record.id, "attempt": record.attempt}},
        )
        return True

    async def progress(self, record: RunRecord) -> None:
        """A running attempt says more about itself (its Job's name, then its uid): the record
        is written, and the progress listeners hear it."""
        active = self._active.get(record.task, {}).get(record.id)
        if active is not None and active.record.attempt == record.attempt:
            active.record = record
        await self.recorder.save(record)
        self._notify(record, self._progress_listeners)

    def stop_run(self, run: str, reason: str) -> bool:
        """Stop the running run ``run`` (another replica asked, through the store)."""
        for by_id in self._active.values():
            if (active := by_id.get(run)) is not None:
                active.stop(reason)
                return True
        return False

    # -- slot accounting ---------------------------------------------------------------------

    def last_slot(self, key: str) -> datetime | None:
        return self.ledger.last_slot(key)

    def track(self, key: str, since: datetime) -> None:
        """Count skipped slots of ``key`` from ``since`` on (a task added or changed now)."""
        self.ledger.track(key, since)

    def forget(self, key: str) -> None:
        self.ledger.forget(key)

    def catch_up(
        self,
        definition: Definition,
        anchor: datetime | None,
        until: datetime,
        *,
        record_superseded: bool = True,
    ) -> None:
        """Slots of ``definition`` after ``anchor`` (its last recorded slot) up to ``until``
        (where the scheduler takes over) were missed: the latest runs once as a ``catchup`` if
        the starting deadline allows, the older ones are recorded as one counted skip (unless
        ``record_superseded`` is False: slots missed while suspended leave no record)."""
        missed = self.ledger.catch_up(definition, anchor, until)
        if missed.superseded is not None and record_superseded:
            self._skip_slots(definition, missed.superseded)
        if missed.latest is not None:
            self.fire(definition, missed.latest, Trigger.CATCHUP)

    def cancel_retries(self, key: str, reason: str) -> int:
        """Runs of ``key`` waiting for a retry do not retry: each records its abandoned
        attempt with ``reason`` (TaskRemoved, TaskChanged). Running attempts are left alone.
        Returns how many were cancelled."""
        waiting = [a for a in self._active.get(key, {}).values() if a.waiting]
        for active in waiting:
            active.stop(reason)
        return len(waiting)

    def _skip_slots(self, definition: Definition, missed: Superseded) -> None:
        record = RunRecord(
            id=run_id(definition.key, missed.name),
            task=definition.key,
            scheduled_at=missed.name,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.SKIPPED,
            started_at=self.clock(),
            owner=self.owner,
        )
        slots = "1 slot" if missed.count == 1 else f"{missed.count} slots"
        self._skip(
            record,
            "Superseded",
            f"{slots} after {_iso(missed.after)} and before {_iso(missed.latest)} did not run "
            "(crontask was down or busy); only the latest missed slot may run",
        )

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
            if not adopted and (why := await self._handed_over(definition, active)) is not None:
                self._skip(active.record, "ConcurrencyForbid", why)
                return
            while True:
                final = await self._run_attempt(definition, active, adopted=adopted)
                adopted = False
                if (
                    final is None
                    or definition is None
                    or not self._retry_due(definition, final, active)
                ):
                    return
                delay = retry_delay(definition.task.spec.retry, final.attempt)
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
                following = dataclasses.replace(
                    final,
                    attempt=final.attempt + 1,
                    trigger=Trigger.RETRY,
                    status=RunStatus.RUNNING,
                    finished_at=None,
                    exit_code=None,
                    reason=None,
                    message=None,
                    output="",
                    job=None,  # the next attempt has its own (a new Job)
                )
                if await active.wait_stopped(delay):
                    await self._abandon(following, active.stop_reason or SHUTDOWN)
                    return
                active.attempt = None
                active.record = dataclasses.replace(following, started_at=self.clock())
        finally:
            record = active.record
            runs = self._active.get(record.task, {})
            runs.pop(record.id, None)
            if not runs:
                self._active.pop(record.task, None)

    async def _handed_over(self, definition: Definition | None, active: ActiveRun) -> str | None:
        """For a task inherited from another replica: why its run there forbids this one."""
        assert definition is not None  # only adopted runs come without one
        handover = self.handover
        policy = definition.task.spec.concurrency_policy
        if (
            handover is None
            or not handover.inherited(definition.key)
            or policy is ConcurrencyPolicy.ALLOW
            or active.record.trigger is Trigger.RETRY
        ):
            return None
        try:
            return await handover.settle(definition.key, policy, REPLACED)
        except Exception:
            log.exception("could not look for runs of other replicas; running it")
            return None

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
            return await self._follow_adopted(active)
        record = active.record
        try:
            await self.recorder.claim(record)
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
        self._notify(record)
        assert definition is not None  # only adopted runs come without one
        return await self._complete(active, await self._attempt(definition, active))

    async def _follow_adopted(self, active: ActiveRun) -> RunRecord | None:
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
        attempt = self.resumable.resume(record)
        active.attempt = attempt
        if active.stop_reason is not None:
            attempt.stop(active.stop_reason)
        try:
            outcome = await attempt.run()
        except Exception as err:
            log.exception("adopted run failed unexpectedly", extra={"fields": {"run": record.id}})
            outcome = failed("ActionError", f"the action failed unexpectedly: {err!r}"[:500])
        return await self._complete(active, outcome)

    async def _complete(self, active: ActiveRun, outcome: Outcome) -> RunRecord | None:
        record = active.record
        if outcome.detached:
            log.info(
                "run detached: its work goes on outside crontask",
                extra={"fields": {"task": record.task, "run": record.id, "why": outcome.reason}},
            )
            return None
        status = RunStatus.INTERRUPTED if outcome.reason == SHUTDOWN else outcome.status
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
                }
            },
        )
        await self.recorder.save(final)
        self._notify(final)
        return final

    @staticmethod
    def _retry_due(definition: Definition, final: RunRecord, active: ActiveRun) -> bool:
        retryable = final.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
        within_limit = final.attempt <= definition.task.spec.retry.limit
        return retryable and within_limit and active.stop_reason is None

    async def _attempt(self, definition: Definition, active: ActiveRun) -> Outcome:
        record = active.record
        log.info(
            "run started",
            extra={"fields": {"task": record.task, "run": record.id, "trigger": record.trigger}},
        )
        try:
            attempt = self.actions.attempt(definition, record)
            active.attempt = attempt
            if active.stop_reason is not None:
                attempt.stop(active.stop_reason)  # run() then reports it without starting
            return await attempt.run()
        except Exception as err:
            # A bug of an action must cost one attempt, never the dispatcher or other runs.
            log.exception(
                "action failed unexpectedly",
                extra={"fields": {"task": record.task, "run": record.id}},
            )
            return failed("ActionError", f"the action failed unexpectedly: {err!r}"[:500])

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

    async def shutdown(self, grace: float) -> None:
        """Cancel the retries that wait (nothing runs for them; recorded ``interrupted``), let
        running runs finish for up to ``grace`` seconds, then stop them (recorded as
        interrupted, reason Shutdown), and wait for their records to be written."""
        for by_id in self._active.values():
            for active in by_id.values():
                # Work that outlives the process (a Job) needs no grace: it is detached now.
                if active.waiting or getattr(active.attempt, "outlives_process", False):
                    active.stop(SHUTDOWN)
        if not await self.drain(grace):
            for by_id in self._active.values():
                for active in by_id.values():
                    active.stop(SHUTDOWN)
            await self.drain()
        await self.recorder.close(timeout=grace)

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


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
