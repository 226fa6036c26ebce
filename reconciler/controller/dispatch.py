"""The dispatcher: from "a slot is due" to a run record, on the event loop.

``fire`` is called on the event loop by the scheduler and returns at once. It decides, on the
loop and so without races, what the slot becomes (a run, or a skip with its reason) and then
runs the attempt as an asyncio task. Store calls are blocking and go to a small thread pool,
so a slow database never delays the loop, and a slow task never delays another's start.

Exactly once per slot: the run id is derived from (task key, slot), and a run starts only
after the store has accepted its ``running`` record; a store that refuses (another process
claimed the slot) means this process does not run it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

from reconciler.core.desired import Definition
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id, split_key
from reconciler.runner.command import CommandOutcome, CommandRun
from reconciler.store.base import DuplicateRun, RunStore

log = logging.getLogger("crontask.runner")

Clock = Callable[[], datetime]
T = TypeVar("T")

SHUTDOWN = "Shutdown"


@dataclasses.dataclass(eq=False)
class ActiveRun:
    record: RunRecord
    command: CommandRun | None = None
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None

    def stop(self, reason: str) -> None:
        """Stop the run, also when its process has not been spawned yet (its claim may still
        be on its way to the store): the reason is kept and applied as soon as it exists."""
        self.stop_reason = self.stop_reason or reason
        if self.command is not None:
            self.command.stop(self.stop_reason)


RunListener = Callable[[RunRecord], None]


class Dispatcher:
    def __init__(
        self,
        store: RunStore,
        *,
        owner: str,
        clock: Clock = lambda: datetime.now(UTC),
        base_env: Mapping[str, str] | None = None,
        kill_grace: float = 10.0,
        output_limit: int = 64 * 1024,
        io_threads: int = 2,
    ) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.kill_grace = kill_grace
        self.output_limit = output_limit
        self._io_pool = ThreadPoolExecutor(io_threads, thread_name_prefix="crontask-store")
        self._active: dict[str, dict[str, ActiveRun]] = {}
        self._listeners: list[RunListener] = []
        # Record writes not tied to a run (skips); kept so drain() and shutdown can await them.
        self._writes: set[asyncio.Task[None]] = set()

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
        write = asyncio.get_running_loop().create_task(self._record(self.store.claim, skipped))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        return skipped

    # -- one run ---------------------------------------------------------------------------

    async def _execute(
        self, definition: Definition, active: ActiveRun, replaced: list[ActiveRun]
    ) -> None:
        record = active.record
        try:
            for old in replaced:
                if old.task is not None:
                    await asyncio.shield(old.task)
            claimed = True
            try:
                await self._io(self.store.claim, record)
            except DuplicateRun:
                log.info(
                    "slot already claimed by another instance",
                    extra={"fields": {"task": record.task, "run": record.id}},
                )
                return
            except Exception:
                # A store that is down must not cost the run: it still runs, and its whole
                # record is written when it ends.
                log.exception(
                    "could not record run start; running it anyway",
                    extra={"fields": {"task": record.task, "run": record.id}},
                )
                claimed = False
            else:
                self._notify(record)
            outcome = await self._attempt(definition, active)
            status = outcome.status
            if outcome.reason == SHUTDOWN:
                status = RunStatus.INTERRUPTED
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
                        "status": str(final.status),
                        "exit_code": final.exit_code,
                        "duration_ms": final.duration_ms,
                    }
                },
            )
            await self._record(self.store.complete if claimed else self.store.claim, final)
        finally:
            runs = self._active.get(record.task, {})
            runs.pop(record.id, None)
            if not runs:
                self._active.pop(record.task, None)

    async def _attempt(self, definition: Definition, active: ActiveRun) -> CommandOutcome:
        spec = definition.task.spec
        record = active.record
        assert spec.command is not None  # the only action so far
        namespace, name = split_key(record.task)
        env = {
            **self.base_env,
            **spec.command.env,
            "CRONTASK_NAME": name,
            "CRONTASK_NAMESPACE": namespace,
            "CRONTASK_RUN_ID": record.id,
            "CRONTASK_SCHEDULED_TIME": record.scheduled_at.astimezone(UTC).isoformat(),
            "CRONTASK_ATTEMPT": str(record.attempt),
        }
        command = CommandRun(
            spec.command.args,
            env=env,
            working_dir=spec.command.working_dir,
            timeout=spec.timeout_seconds,
            kill_grace=self.kill_grace,
            output_limit=self.output_limit,
        )
        active.command = command
        if active.stop_reason is not None:
            command.stop(active.stop_reason)  # run() then reports it without spawning
        log.info(
            "run started",
            extra={"fields": {"task": record.task, "run": record.id, "trigger": record.trigger}},
        )
        return await command.run()

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
        self._io_pool.shutdown(wait=True)

    # -- store I/O off the loop ------------------------------------------------------------

    async def _io(self, call: Callable[[RunRecord], T], record: RunRecord) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io_pool, call, record)

    async def _record(self, call: Callable[[RunRecord], None], record: RunRecord) -> None:
        try:
            await self._io(call, record)
        except DuplicateRun:
            return  # the slot's record exists already: another instance took it
        except Exception:
            log.exception(
                "could not record run", extra={"fields": {"task": record.task, "run": record.id}}
            )
            return
        self._notify(record)

    def _notify(self, record: RunRecord) -> None:
        for listener in self._listeners:
            listener(record)
