"""Slots that do not run: each recorded ``skipped`` with why, and said in the log once its
record is in (a skip may lose to a record of its slot another replica wrote first: then no
skip happened here, and the log says who recorded the slot)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime

from reconciler.controller.active import ActiveRun
from reconciler.controller.recorder import Recorder
from reconciler.controller.slots import Superseded
from reconciler.core.desired import Definition
from reconciler.core.jobs import TERMINATING
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id

log = logging.getLogger("crontask.runner")

# Why a slot did not run: a later one ran in its place (missed slots; a held run:
# ``RunExecution.supersede_held``).
SUPERSEDED = "Superseded"
# Why a slot did not run: its period ran before the task changed (a new jitterSeconds moved
# the task's slots later: ``controller.periods``).
PERIOD_RAN = "PeriodRan"


class SlotSkips:
    """The recording of skipped slots, a mixin of
    :class:`~reconciler.controller.execution.RunExecution` (the dispatcher holds the state
    declared here)."""

    recorder: Recorder
    owner: str
    clock: Callable[[], datetime]
    _writes: set[asyncio.Task[None]]
    _active: dict[str, dict[str, ActiveRun]]
    _notify: Callable[[RunRecord], None]
    _claimed_elsewhere: Callable[[RunRecord], None]  # SlotClaims'
    shares_store_alone: Callable[[], bool]  # SlotClaims'

    def _skip(self, record: RunRecord, reason: str, message: str) -> RunRecord:
        skipped = skip_of(record, reason, message)
        if (active := self._active.get(record.task, {}).get(record.id)) is not None:
            active.not_begun(skipped)  # a run launched, skipped as it waited: its answer
        write = asyncio.get_running_loop().create_task(self._add_skip(skipped))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        return skipped

    async def _add_skip(self, skipped: RunRecord) -> None:
        """Record a skip, then say so: its insert may lose to a record of the slot another
        replica wrote first (its run, or its own skip), and then no skip happened here. A
        skip kept for later (the store unavailable, or its answer late) is told to the
        listeners once it is written, if it is (``Recorder.add``)."""
        fields = {"task": skipped.task, "run": skipped.id, "reason": skipped.reason}
        if await self.recorder.add(skipped, written_later=self._notify):
            log.info("slot skipped", extra={"fields": fields})
            self._notify(skipped)
            return
        # Records kept for later: the store is away, and this one is among them (no read then).
        first = None if self.recorder.pending else await self._recorded_first(skipped)
        if first is None:  # kept until the store answers (or lost: the recorder said why)
            log.info("slot skipped", extra={"fields": fields})
            return
        if first.owner != self.owner and self.shares_store_alone():
            # Without replicas another crontask on this store ran the slot this one skips
            # (Forbid, its own run still going): their runs overlap, which is warned of.
            self._claimed_elsewhere(skipped)
            return
        who = "another replica" if first.owner != self.owner else "this crontask"
        fields = {"task": skipped.task, "run": skipped.id, "owner": first.owner}
        fields["status"] = first.status.value
        log.info(f"slot not skipped: {who} recorded it first", extra={"fields": fields})

    async def _recorded_first(self, skipped: RunRecord) -> RunRecord | None:
        """The record of ``skipped``'s slot that another write put in first, if the store
        holds one that is not this skip (None if it cannot be read)."""
        store = self.recorder.store
        try:
            stored = await self.recorder.call(store.get, skipped.id, skipped.attempt)
        except Exception:
            return None
        return stored if stored is not None and stored != skipped else None

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
        if missed.more:
            slots = f"more than {missed.count} slots"
        self._skip(
            record,
            SUPERSEDED,
            f"{slots} after {utc_text(missed.after)} and before {utc_text(missed.latest)} did"
            " not run (crontask was down or busy); only the latest missed slot may run",
        )


def skip_of(record: RunRecord, reason: str, message: str) -> RunRecord:
    """The skip record of ``record``'s slot, decided when ``record`` was (its start)."""
    return dataclasses.replace(
        record,
        status=RunStatus.SKIPPED,
        started_at=None,
        finished_at=record.started_at,
        reason=reason,
        message=message,
    )


def utc_text(at: datetime) -> str:
    """``at`` as the run messages and warnings write a time: UTC, RFC 3339, ``Z``."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def being_deleted(running: Mapping[str, ActiveRun], live: Iterable[RunRecord]) -> set[str]:
    """The runs of ``running`` (by id) whose attempt's Job is being deleted, held by a
    finalizer while its pods run: ``live``, the task's Jobs from the watch, says so of that
    attempt (``core.jobs.TERMINATING``). A held Job of an attempt before is not the run's: its
    retry's Job runs beside it, and the run is still running."""
    return {
        r.id
        for r in live
        if r.reason == TERMINATING
        and (active := running.get(r.id)) is not None
        and active.record.attempt == r.attempt
    }


def forbidden(running: Mapping[str, ActiveRun], deleting: Collection[str]) -> str:
    """Why ``Forbid`` turns a slot away for the runs ``running`` (by id), of which those in
    ``deleting`` are Jobs being deleted that a finalizer holds, their pods still running
    (``core.jobs.TERMINATING``): said so, that an operator looks at what holds them rather
    than for a run that is slow."""
    said = []
    if going := sorted(i for i in running if i not in deleting):
        how = "still running"
        if all(running[i].claiming and running[i].record.attempt == 1 for i in going):
            how = "not started yet, its claim waiting for the run store"
        said.append(f"previous run {how} ({', '.join(going)})")
    if held := sorted(i for i in running if i in deleting):
        said.append(
            f"previous run's Job is being deleted ({', '.join(held)}): Terminating, held by a "
            "finalizer while its pods run"
        )
    return "; ".join([*said, "policy Forbid"])
