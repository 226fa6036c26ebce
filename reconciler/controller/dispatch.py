"""The dispatcher: from "a slot is due" to a run record, on the event loop.

``fire`` is called on the event loop by the scheduler and returns at once. It decides, on the
loop and so without races, what the slot becomes (a run, or a skip with its reason) and then
runs the attempt as an asyncio task. Records go through the ``Recorder`` (the store's own
threads, and a retry buffer while it is unavailable), so a slow database never delays the
loop, and a slow task never delays another's start.

Exactly once per slot: the run id is derived from (task key, slot), and a run starts only
after the store has accepted its ``running`` record; a store that refuses (another process
claimed the slot) means this process does not run it.

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
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from reconciler.controller.recorder import Recorder
from reconciler.core.desired import Definition
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id, split_key
from reconciler.core.schedule import Schedule
from reconciler.core.timing import backlog, retry_delay
from reconciler.runner.command import CommandOutcome, CommandRun
from reconciler.runner.http import HttpRun
from reconciler.scheduling.base import schedule_of
from reconciler.store.base import DuplicateRun, RunStore

log = logging.getLogger("crontask.runner")

Clock = Callable[[], datetime]

SHUTDOWN = "Shutdown"


class Attempt(Protocol):
    """One attempt of an action (``CommandRun``, ``HttpRun``)."""

    async def run(self) -> CommandOutcome: ...

    def stop(self, reason: str) -> None: ...


@dataclasses.dataclass(eq=False)
class ActiveRun:
    record: RunRecord
    command: Attempt | None = None
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    # Made only when a retry waits (most runs never need one).
    _stopped: asyncio.Event | None = None

    def stop(self, reason: str) -> None:
        """Stop the run, also when its process has not been spawned yet (its claim may still
        be on its way to the store) or while it waits for a retry: the reason is kept and
        applied as soon as there is something to stop."""
        self.stop_reason = self.stop_reason or reason
        if self._stopped is not None:
            self._stopped.set()
        if self.command is not None:
            self.command.stop(self.stop_reason)

    async def wait_stopped(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if the run was stopped before or meanwhile."""
        if self.stop_reason is not None:
            return True
        if self._stopped is None:
            self._stopped = asyncio.Event()
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            return False
        return True


RunListener = Callable[[RunRecord], None]


class Dispatcher:
    def __init__(
        self,
        store: RunStore,
        *,
        owner: str,
        clock: Clock = lambda: datetime.now(UTC),
        environ: Mapping[str, str] | None = None,
        task_env: Mapping[str, str] | None = None,
        kill_grace: float = 10.0,
        output_limit: int = 64 * 1024,
        recorder: Recorder | None = None,
    ) -> None:
        self.recorder = recorder or Recorder(store)
        self.owner = owner
        self.clock = clock
        # crontask's own environment: where an HTTP action's header values named by `env` are
        # read (crontask makes the request; nothing is handed to a process).
        self.environ = dict(os.environ if environ is None else environ)
        # What every command's environment starts from (runner.environment), before its own
        # `env` and the run's CRONTASK_* variables.
        self.task_env = dict(self.environ if task_env is None else task_env)
        self.kill_grace = kill_grace
        self.output_limit = output_limit
        self._active: dict[str, dict[str, ActiveRun]] = {}
        self._listeners: list[RunListener] = []
        # Record writes not tied to a run (skips); kept so drain() and shutdown can await them.
        self._writes: set[asyncio.Task[None]] = set()
        # The latest slot each task was handed (or the instant accounting began), to count
        # the slots a late hand-off skipped over.
        self._last_slot: dict[str, datetime] = {}
        # Parsed schedules by task, valid while the spec hash matches (parsing costs more than
        # the slot arithmetic it serves, at every fire).
        self._schedules: dict[str, tuple[str, Schedule]] = {}

    # -- queries ---------------------------------------------------------------------------

    def active(self, key: str) -> list[RunRecord]:
        return [a.record for a in self._active.get(key, {}).values()]

    def active_count(self) -> int:
        return sum(len(runs) for runs in self._active.values())

    def subscribe(self, listener: RunListener) -> None:
        """``listener`` is called on the loop with every record written (start and end)."""
        self._listeners.append(listener)

    # -- the hand-off ----------------------------------------------------------------------

    def fire(
        self, definition: Definition, scheduled_at: datetime, trigger: Trigger = Trigger.SCHEDULE
    ) -> RunRecord:
        """Turn a due slot into a run or a recorded skip. Returns the record it starts with."""
        spec = definition.task.spec
        key = definition.key
        now = self.clock()
        if trigger is Trigger.SCHEDULE:
            self._account_for_skipped_slots(definition, scheduled_at)
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
        running = self._active.get(key, {})
        policy = spec.concurrency_policy
        if running and policy is ConcurrencyPolicy.FORBID:
            ids = ", ".join(sorted(running))
            return self._skip(
                record, "ConcurrencyForbid", f"previous run still running ({ids}); policy Forbid"
            )
        replaced = list(running.values()) if policy is ConcurrencyPolicy.REPLACE else []
        for old in replaced:
            old.stop("Replaced")
        active = ActiveRun(record)
        self._active.setdefault(key, {})[record.id] = active
        active.task = asyncio.get_running_loop().create_task(
            self._execute(definition, active, replaced), name=f"run {record.id}"
        )
        return record

    # -- slot accounting ---------------------------------------------------------------------

    def last_slot(self, key: str) -> datetime | None:
        return self._last_slot.get(key)

    def track(self, key: str, since: datetime) -> None:
        """Count skipped slots of ``key`` from ``since`` on (a task added or changed now)."""
        self._last_slot[key] = since

    def forget(self, key: str) -> None:
        self._last_slot.pop(key, None)
        self._schedules.pop(key, None)

    def _schedule(self, definition: Definition) -> Schedule:
        cached = self._schedules.get(definition.key)
        if cached is None or cached[0] != definition.hash:
            cached = (definition.hash, schedule_of(definition))
            self._schedules[definition.key] = cached
        return cached[1]

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
        ``record_superseded`` is False: slots missed while suspended leave no record). With no
        anchor (a task never run before) nothing is caught up."""
        key = definition.key
        self._last_slot[key] = max(until, anchor) if anchor else until
        if anchor is None or definition.task.spec.suspend or until <= anchor:
            return
        missed = backlog(self._schedule(definition), anchor, until)
        if missed.empty:
            return
        assert missed.latest is not None
        if missed.superseded and record_superseded:
            assert missed.last_superseded is not None
            self._skip_slots(
                definition, missed.superseded, anchor, missed.latest, missed.last_superseded
            )
        self.fire(definition, missed.latest, Trigger.CATCHUP)

    def _account_for_skipped_slots(self, definition: Definition, slot: datetime) -> None:
        key = definition.key
        last = self._last_slot.get(key)
        self._last_slot[key] = max(slot, last) if last else slot
        if last is None or slot <= last:
            return
        missed = backlog(self._schedule(definition), last, slot)
        if missed.superseded and missed.last_superseded is not None:
            self._skip_slots(definition, missed.superseded, last, slot, missed.last_superseded)

    def _skip_slots(
        self, definition: Definition, count: int, after: datetime, latest: datetime, name: datetime
    ) -> None:
        record = RunRecord(
            id=run_id(definition.key, name),
            task=definition.key,
            scheduled_at=name,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.SKIPPED,
            started_at=self.clock(),
            owner=self.owner,
        )
        slots = "1 slot" if count == 1 else f"{count} slots"
        self._skip(
            record,
            "Superseded",
            f"{slots} after {_iso(after)} and before {_iso(latest)} did not run "
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
        self, definition: Definition, active: ActiveRun, replaced: list[ActiveRun]
    ) -> None:
        try:
            for old in replaced:
                if old.task is not None:
                    await asyncio.shield(old.task)
            while True:
                final = await self._run_attempt(definition, active)
                if final is None or not self._retry_due(definition, final, active):
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
                if await active.wait_stopped(delay):
                    return  # replaced or shut down while waiting: no further attempt
                active.command = None
                active.record = dataclasses.replace(
                    final,
                    attempt=final.attempt + 1,
                    trigger=Trigger.RETRY,
                    status=RunStatus.RUNNING,
                    started_at=self.clock(),
                    finished_at=None,
                    exit_code=None,
                    reason=None,
                    message=None,
                    output="",
                )
        finally:
            record = active.record
            runs = self._active.get(record.task, {})
            runs.pop(record.id, None)
            if not runs:
                self._active.pop(record.task, None)

    async def _run_attempt(self, definition: Definition, active: ActiveRun) -> RunRecord | None:
        """Claim, run and complete one attempt; None if another instance holds the slot."""
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
        outcome = await self._attempt(definition, active)
        status = RunStatus.INTERRUPTED if outcome.reason == SHUTDOWN else outcome.status
        final = record.finish(
            status,
            finished_at=self.clock(),
            exit_code=outcome.exit_code,
            reason=outcome.reason,
            message=outcome.message,
            output=outcome.output,
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

    async def _attempt(self, definition: Definition, active: ActiveRun) -> CommandOutcome:
        record = active.record
        command = self._action(definition, record)
        active.command = command
        if active.stop_reason is not None:
            command.stop(active.stop_reason)  # run() then reports it without spawning
        log.info(
            "run started",
            extra={"fields": {"task": record.task, "run": record.id, "trigger": record.trigger}},
        )
        return await command.run()

    def _action(self, definition: Definition, record: RunRecord) -> Attempt:
        """The task's action, ready to run as this attempt of ``record``."""
        spec = definition.task.spec
        namespace, name = split_key(record.task)
        run_env = {
            "CRONTASK_NAME": name,
            "CRONTASK_NAMESPACE": namespace,
            "CRONTASK_RUN_ID": record.id,
            "CRONTASK_SCHEDULED_TIME": record.scheduled_at.astimezone(UTC).isoformat(),
            "CRONTASK_ATTEMPT": str(record.attempt),
        }
        if spec.http is not None:
            # The run's identity travels as headers, so the receiver can deduplicate retries.
            return HttpRun(
                spec.http,
                env=self.environ,
                extra_headers={
                    "X-Crontask-Run-Id": record.id,
                    "X-Crontask-Attempt": str(record.attempt),
                    "X-Crontask-Scheduled-Time": run_env["CRONTASK_SCHEDULED_TIME"],
                },
                timeout=spec.timeout_seconds,
                output_limit=self.output_limit,
            )
        assert spec.command is not None  # the model guarantees exactly one action
        return CommandRun(
            spec.command.args,
            env={**self.task_env, **spec.command.env, **run_env},
            working_dir=spec.command.working_dir,
            timeout=spec.timeout_seconds,
            kill_grace=self.kill_grace,
            output_limit=self.output_limit,
        )

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
        """Let running runs finish for up to ``grace`` seconds, then stop them (recorded as
        interrupted, reason Shutdown), and wait for their records to be written."""
        if not await self.drain(grace):
            for by_id in self._active.values():
                for active in by_id.values():
                    active.stop(SHUTDOWN)
            await self.drain()
        await self.recorder.close(timeout=grace)

    async def _add(self, record: RunRecord) -> None:
        if await self.recorder.add(record):
            self._notify(record)

    def _notify(self, record: RunRecord) -> None:
        for listener in self._listeners:
            listener(record)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
