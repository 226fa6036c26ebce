"""The dispatcher: from "a slot is due" to a run record, on the event loop.

``fire`` is called on the event loop by the scheduler and returns at once. It decides, on the
loop and so without races, what the slot becomes (a run, or a skip with its reason) and then
runs the attempt as an asyncio task. Records go through the ``Recorder`` (the store's own
threads, and a retry buffer while it is unavailable), so a slow database never delays the
loop, and a slow task never delays another's start.

Exactly once per slot: the run id is derived from (task key, slot), and a run starts only
after the store has accepted its ``running`` record; a store that refuses (another process
claimed the slot) means this process does not run it.

On time: the scheduler hands a slot over ahead of it (``due``), and a run that can be decided
then is decided and claimed then, its start waiting for the slot; so what makes a run exactly
once and supervised is paid before the slot, not between the slot and the process. A process
away past the slot (paused, frozen) looks again before it starts it (``RunExecution._late``).
With replicas, each slot, catch-up and manual run looks at the fence's clock first (``fire``,
``due``): a replica resumed past its renew deadline (SIGSTOP) neither claims nor starts one
before a renewal says whether its task is still its own, as another replica may have taken it
(and, under Replace, a claim here would stop its run there). A slot or a catch-up not started
is caught up when the fence lifts (``_not_started``, ``unstarted``; one ahead of its instant
waits for it, as when paused); a manual run is answered 503.

Work that outlives the process (Kubernetes Jobs, see ``runner.base.Resumable``): the runs a
``resumable`` action reports for a task (its live Jobs) that are not followed here are
*adopted* when the task fires, so the concurrency policy counts them, and ``adopt`` follows the
runs an earlier crontask left ``running``; at shutdown such attempts are detached at once (their
records stay ``running``) rather than given the grace.

Nothing is dropped silently: a slot that does not run leaves a ``skipped`` record with its
reason — ``ConcurrencyForbid``, ``MissedDeadline``, ``TooManyRuns`` (``controller.bounds``),
``ReplaceBlocked`` (a replaced run's Job that could not be deleted: ``controller.replace_wait``), or
``Superseded`` for slots missed while crontask was down or busy (one record with the count; only
the latest missed slot may run, as a ``catchup``), and for a run decided ahead that a later slot
overtook before it started (``supersede_ahead``: the process was away between its claim and its
instant), or ``PeriodRan`` for a changed task's slot whose period ran (``controller.periods``).
Retries are further attempts of the same run (same id, ``attempt`` 2, 3, ...); while a run waits
for its next attempt it still occupies its slot for the concurrency policy; a run that has
ended, whose end record waits for a slow store, does for 0.5 s at most.

Here: the decision of a slot (``fire``), adoption, progress, and the slots' accounting. The
dispatcher's other parts are mixins: the hand-off ahead (``controller.ahead``), the execution
of a run (``controller.execution``), the wait of a ``Replace`` run for the Jobs it replaces to
be deleted (``controller.replace_wait``), and the stops of runs and crontask's own stop, its grace
and a second stop signal (``controller.stops``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from reconciler.aio import in_thread
from reconciler.controller.active import REPLACED, TASK_CHANGED, ActiveRun, Start
from reconciler.controller.ahead import AheadSlots
from reconciler.controller.bounds import TOO_MANY_RUNS, RunBounds
from reconciler.controller.execution import RunListener
from reconciler.controller.handover import Handover
from reconciler.controller.late_starts import MISSED_DEADLINE, TurnedAway, missed_deadline
from reconciler.controller.periods import RanPeriods, not_run, not_run_message
from reconciler.controller.recorder import Recorder
from reconciler.controller.replace_wait import ReplaceWaits
from reconciler.controller.skips import PERIOD_RAN, SUPERSEDED, being_deleted, forbidden
from reconciler.controller.slots import SlotLedger
from reconciler.controller.stops import RunStops
from reconciler.core.desired import Definition
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import (
    NOT_STARTED,
    RunRecord,
    RunStatus,
    Trigger,
    manual_slot,
    run_id,
    too_many_manual,
)
from reconciler.core.timing import AHEAD_MAX
from reconciler.runner.base import Actions, Attempt, Outcome, Resumable
from reconciler.runner.command import CommandRun, Cut
from reconciler.store.base import RunStore

log = logging.getLogger("crontask.runner")

# What the record of a run killed by a second stop signal adds to its message.
HURRIED = "crontask was asked again to stop: killed at once, without the kill grace"
# ... of a run that had ended by itself, whose leftovers (``Cut.LEFTOVERS``) it killed.
HURRIED_LEFTOVERS = (
    "crontask was asked again to stop: what it left was killed at once, without the kill grace"
)
_HURRIED_NOTES = {Cut.RUN: HURRIED, Cut.LEFTOVERS: HURRIED_LEFTOVERS}
_JUST_BEFORE = timedelta(microseconds=1)  # a slot, as a catch-up counts from after it

Clock = Callable[[], datetime]


class Dispatcher(ReplaceWaits, AheadSlots, RunStops):
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
        self.periods = RanPeriods()  # a changed task's slots whose period ran (periods.py)
        # With replicas: runs of tasks inherited from another replica (see handover.py).
        self.handover: Handover | None = None
        self._paused: str | None = None
        self._may_start = asyncio.Event()  # set while not paused: what a held retry waits for
        self._may_start.set()
        # With replicas: whether a task is still this replica's (for a retry the fence held).
        self.owns: Callable[[str], bool] = lambda key: True
        # With replicas: pauses this process if its renew deadline has passed. A slot (``fire``,
        # ``due``), a retry and a late start look before they start: the process may itself
        # have been paused (SIGSTOP) past the deadline, its renewal loop not yet run since.
        self.fence: Callable[[], None] = lambda: None
        # Tasks with scheduled slots not started while paused: caught up on when it ends.
        self.unstarted: set[str] = set()
        self._told: dict[str, float] = {}  # see SlotClaims._claimed_elsewhere
        self._ahead: dict[str, datetime] = {}  # see SlotClaims.recorded_ahead
        # The action whose work outlives the process (Jobs), if there is one.
        self.resumable: Resumable | None = None
        self._active: dict[str, dict[str, ActiveRun]] = {}
        self.bounds = RunBounds()  # how many runs may be in progress at once
        self._listeners: list[RunListener] = []
        self._progress_listeners: list[RunListener] = []
        # Record writes not tied to a run (skips); kept so drain() and shutdown can await them.
        self._writes: set[asyncio.Task[None]] = set()
        self._closing = False  # crontask is stopping: no new run, no retry (``close``)
        # The attempts killed at once by a second stop signal (``_kill_now``).
        self._killed: set[tuple[str, int]] = set()
        # Slots handed over ahead that are decided at their instant (``due``), by task.
        self._deferred: dict[str, dict[datetime, tuple[asyncio.TimerHandle, Definition]]] = {}
        self._turned_away: dict[str, TurnedAway] = {}  # see late_starts.py
        # The runs that replace others (``Replace``), until their first attempt may start: the
        # runs they replace stopped (``_execute``), and their Jobs gone (``_run_attempt``).
        self._replacing: set[str] = set()
        self._replacing_elsewhere: set[str] = set()  # see SlotClaims._claim_exclusive
        self._replace_waited: dict[str, float] = {}  # see late_starts.py

    @property
    def paused(self) -> str | None:
        """Why this process may not start runs now (a replica that lost its membership)."""
        return self._paused

    @paused.setter
    def paused(self, why: str | None) -> None:
        self._paused = why
        if why is None:
            self._may_start.set()
        else:
            self._may_start.clear()

    # -- queries ---------------------------------------------------------------------------

    def active(self, key: str) -> list[RunRecord]:
        return [a.record for a in self._active.get(key, {}).values()]

    def waiting(self, key: str) -> list[RunRecord]:
        """The runs of ``key`` that wait: for a retry's backoff, or for the fence to lift."""
        return [a.record for a in self._active.get(key, {}).values() if a.waiting]

    def replacing(self, run_id: str) -> bool:
        """Whether run ``run_id`` waits for the runs it replaces to stop (a command its kill
        grace, a Job its delete) before it starts: alone, nothing of it is recorded yet; with
        replicas, its claim (``running``); or whose claim waits for a run on another replica to
        stop (``_claim_exclusive``). Any thread may ask: a membership test of a set only the loop
        changes is one step under the GIL."""
        return run_id in self._replacing or run_id in self._replacing_elsewhere

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

    # -- the hand-off (``controller.ahead``: slots handed over ahead) ----------------------

    def fire(
        self, definition: Definition, scheduled_at: datetime, trigger: Trigger = Trigger.SCHEDULE
    ) -> RunRecord:
        """Turn a due slot into a run or a recorded skip. Returns the record it starts with."""
        spec = definition.task.spec
        key = definition.key
        now = self.clock()
        # A scheduled slot handed over ahead of it (``due``) starts on the slot, not before.
        ahead = (scheduled_at - now).total_seconds() if trigger is Trigger.SCHEDULE else 0.0
        ahead = ahead if 0 < ahead <= AHEAD_MAX else 0.0
        # The renew deadline may have passed while this process was stopped, no renewal since
        # to notice: the task may be another replica's now (see the module docstring).
        self.fence()
        if self.paused is not None or self._closing:
            return self._not_started(definition, scheduled_at, trigger)
        if trigger is Trigger.SCHEDULE and (moved := self.periods.ran(key, scheduled_at)):
            # A period that ran before the task changed (periods.py): not again, but recorded.
            record = not_run(key, scheduled_at, self.owner, now)
            return self._skip(record, PERIOD_RAN, not_run_message(moved))
        if trigger is Trigger.SCHEDULE and (jumped := self.ledger.handed(definition, scheduled_at)):
            self._skip_slots(definition, jumped)
        record = RunRecord(
            id=run_id(key, scheduled_at),
            task=key,
            scheduled_at=scheduled_at,
            trigger=trigger,
            status=RunStatus.RUNNING,
            started_at=scheduled_at if ahead else now,
            owner=self.owner,
        )
        if (refused := self._refused_at_once(definition, record, now)) is not None:
            return refused
        if trigger is not Trigger.MANUAL:
            # Only the latest missed slot runs: one of this task decided ahead before this
            # process was away (SIGSTOP) and not begun does not, nor counts for the policy.
            self.supersede_ahead(definition, scheduled_at)
        live = self.resumable.running(key) if self.resumable is not None else []
        for run in live:  # the task's Jobs, from the watch
            self.adopt(definition, run)
        running = self._active.get(key, {})
        if (same := running.get(record.id)) is not None:
            # The same slot again while it runs here (two manual runs asked in one microsecond,
            # a clock stepped back): it is that run. A second one would take its place among
            # the runs followed here, and the first would go on unseen by the policies and by
            # shutdown, while the store refused the second's claim anyway.
            log.info("slot already running here", extra={"fields": {"task": key, "run": record.id}})
            return same.record
        policy = spec.concurrency_policy
        if running and policy is ConcurrencyPolicy.FORBID:
            deleting = being_deleted(running, live)
            return self.turn_away(definition, record, running, forbidden(running, deleting))
        if (why := self.bounds.refused(definition, len(running))) is not None:
            return self._skip(record, TOO_MANY_RUNS, why)  # before it replaces anything
        replaced = list(running.values()) if policy is ConcurrencyPolicy.REPLACE else []
        self._launch(definition, record, ahead, replaced)
        return record

    def supersede_held(self, keys: Collection[str]) -> None:
        """The fence lifts, and the slots of ``keys`` not started meanwhile are to be caught up
        (``Reconciler.catch_up_unstarted``): a first attempt the fence held before it began was
        decided before them, so it is older than the slot caught up. It does not start (its
        record says ``Superseded``) and holds its slot no longer, so the catch-up is not
        skipped under Forbid for a run that never started, nor does it start late itself."""
        for key in keys:
            for active in list(self._active.get(key, {}).values()):
                if active.waiting and not active.begun and active.record.attempt == 1:
                    self._supersede(active)

    def _refused_at_once(
        self, definition: Definition, record: RunRecord, now: datetime
    ) -> RunRecord | None:
        """The skip of a run refused before anything else is looked at: a manual run past the
        manual runs going (``too_many_manual``), a slot past its startingDeadlineSeconds. A
        slot decided within it is not refused later for its wait for the runs it replaces
        (``_waited``): as a CronJob's, a slot that replaces a run runs."""
        if record.trigger is Trigger.MANUAL:
            going = [a for runs in self._active.values() for a in runs.values()]
            replaced = {a.record.id for a in going if a.stop_reason == REPLACED}
            why = too_many_manual((a.record for a in going), record.task, replaced)
            if why is not None:
                return self._skip(record, "TooManyManualRuns", why)
            return None
        late = (now - record.scheduled_at).total_seconds()
        deadline = definition.task.spec.starting_deadline_seconds
        if deadline is not None and late > deadline:
            return self._skip(record, MISSED_DEADLINE, missed_deadline(late, deadline))
        return None

    def _launch(
        self, definition: Definition, record: RunRecord, ahead: float, replaced: list[ActiveRun]
    ) -> None:
        """``record`` decided: the runs it replaces stopped, its claim sent (or left to its
        task), and its task started, its start ``ahead`` seconds from now (0: at once)."""
        key, policy = record.task, definition.task.spec.concurrency_policy
        for old in replaced:
            old.stop(REPLACED)
        loop = asyncio.get_running_loop()
        now = loop.time()
        active = ActiveRun(record, start_at=now + ahead if ahead else None, decided_at=now)
        if record.trigger is Trigger.MANUAL and policy is ConcurrencyPolicy.REPLACE:
            active.start = Start()  # its answer waits for its start (``api.run_decision``)
        if self.handover is not None and policy is not ConcurrencyPolicy.ALLOW:
            # With replicas a run of the task may be going on another one: the store looks
            # for it and claims in one step (see handover.py).
            active.claim = self._claim_exclusive(active.record, policy)
        elif not replaced and (self.handover is None or not self.handover.inherited(key)):
            # Nothing to wait for before the claim: it goes to the store now, while the
            # scheduler hands over the rest of the slots due with this one.
            active.claim = self._claim(record)
        self._active.setdefault(key, {})[record.id] = active
        self.bounds.admit(definition, record.id)
        active.task = loop.create_task(
            self._execute(definition, active, replaced), name=f"run {record.id}"
        )
        if replaced:
            self._replacing.add(record.id)
            active.task.add_done_callback(lambda _: self._replaced_end(record.id))

    def _replaced_end(self, run: str) -> None:
        self._replacing.discard(run)
        self._replace_waited.pop(run, None)

    def fire_manual(self, definition: Definition) -> RunRecord:
        """A manual run (the API, the page, a run-now annotation): its slot is the moment it
        was asked for, so its id stays unique. With replicas a run of the task may be going
        on another one: its claim looks for it (``fire``), so the concurrency policy holds.
        Past ``core.runs.MANUAL_MAX`` manual runs of the task going here (or
        ``MANUAL_MAX_TOTAL`` of all tasks), it is skipped (``too_many_manual``)."""
        return self.fire(definition, manual_slot(self.clock()), Trigger.MANUAL)

    def _not_started(
        self, definition: Definition, scheduled_at: datetime, trigger: Trigger
    ) -> RunRecord:
        """Paused: the slot is neither run nor recorded here; a record from this one could
        only take that slot's id. If the task moves, its new owner catches it up; if it stays
        (the renewal works again before the lease ran out), this replica does, from where the
        ledger stopped (``unstarted``), a catch-up's slot included. A manual run is not kept:
        its caller is told (the API answers 503). Closing (crontask is stopping): neither
        either; the next start catches it up, as the slots due while crontask is down."""
        why = self.paused or "crontask is stopping"
        if trigger is Trigger.CATCHUP and self.paused is not None:
            # The ledger has counted past this slot (``catch_up``): back to just before it, so
            # that it is the latest missed slot again when the fence lifts, not lost.
            self.ledger.track(definition.key, scheduled_at - _JUST_BEFORE)
        if trigger is not Trigger.MANUAL and self.paused is not None:
            self.unstarted.add(definition.key)
        log.warning(
            "slot not started",
            extra={"fields": {"task": definition.key, "reason": why}},
        )
        now = self.clock()
        return RunRecord(
            id=run_id(definition.key, scheduled_at),
            task=definition.key,
            scheduled_at=scheduled_at,
            trigger=trigger,
            status=RunStatus.SKIPPED,
            finished_at=now,
            reason=NOT_STARTED,
            message=f"this replica may not start runs now: {why}",
            owner=self.owner,
        )

    def adopt(self, definition: Definition | None, record: RunRecord) -> bool:
        """Follow a run started before, whose work goes on outside any process (a Job): by an
        earlier crontask, or by another replica. It counts as running for the concurrency
        policy, its end is recorded (the store's record becomes this process's), and a failure
        is retried as ``definition`` says (no retry: None, a removed task; or one changed since
        the work began, ``Resumable.changed``). False if followed here already, or no action."""
        if self.resumable is None or record.id in self._active.get(record.task, {}):
            return False
        active = ActiveRun(dataclasses.replace(record, owner=self.owner))
        # A later slot runs here already (a restart's catch-up, decided before this adoption,
        # when this Job no longer ran): a retry would make a Job beside it, which Forbid and
        # Replace never do.
        policy = None if definition is None else definition.task.spec.concurrency_policy
        others = self._active.get(record.task, {}).values()
        later = (a.record.scheduled_at > record.scheduled_at for a in others)
        if policy not in (None, ConcurrencyPolicy.ALLOW) and any(later):
            active.no_retry = SUPERSEDED
        if definition is not None and self.resumable.changed(definition, record):
            active.no_retry = TASK_CHANGED  # changed while crontask was down, as in a pass
        self._active.setdefault(record.task, {})[record.id] = active
        # "run adopted" is said once its stored record is read (``_follow_adopted``): the Job
        # of a run recorded over (its delete refused) is still followed, not adopted.
        active.task = asyncio.get_running_loop().create_task(
            self._execute(definition, active, [], adopted=True), name=f"adopted {record.id}"
        )
        return True

    async def progress(self, record: RunRecord) -> None:
        """A running attempt says more about itself (its Job's name, then its uid): the record
        is written, and the progress listeners hear it."""
        active = self._active.get(record.task, {}).get(record.id)
        if active is not None and active.record.attempt == record.attempt:
            # The attempt's copy of the record predates its start (``_begin``): keep that.
            record = dataclasses.replace(record, started_at=active.record.started_at)
            active.record = record
        await self.recorder.save(record)
        self._notify(record, self._progress_listeners)

    # -- slot accounting ---------------------------------------------------------------------

    def last_slot(self, key: str) -> datetime | None:
        return self.ledger.last_slot(key)

    def track(self, key: str, since: datetime) -> None:
        """Count skipped slots of ``key`` from ``since`` on (a task added or changed now)."""
        self.ledger.track(key, since)

    def forget(self, key: str) -> None:
        self.ledger.forget(key)
        self._ahead.pop(key, None)
        self.periods.forget(key)

    # Marks whose write failed (key -> since), sent again with the next pass's: a mark only
    # moves forward, so a late write is safe. One per key, the later: bounded by the tasks.
    _unmarked: dict[str, datetime] | None = None

    def mark_tracked(self, keys: Collection[str]) -> None:
        """``keys`` were added to the scheduler without catching any slot up: where the ledger
        now counts each from goes to the store (``RunStore.mark_tracked``), in one call for
        them all, off the loop, so that the next start counts their missed slots from there,
        not from a run before they were removed, and not from nowhere for one never run. A
        write that fails is tried again with the next pass's (a resync at the latest); until
        then, a start would count from the newest run, as before.
        Not in the recorder's threads: the first start's write of thousands of tasks would
        hold up their first claims there."""
        since = {key: at for key in keys if (at := self.ledger.last_slot(key)) is not None}
        since = self._later(self._unmarked or {}, since)
        self._unmarked = None
        if not since:
            return
        loop = asyncio.get_running_loop()  # a pass runs on it (``Reconciler.apply``)
        write = loop.create_task(self._mark_tracked(since), name="mark tracked")
        self._writes.add(write)  # waited for by drain and shutdown, as a skip's write
        write.add_done_callback(self._writes.discard)

    async def _mark_tracked(self, since: dict[str, datetime]) -> None:
        try:
            await in_thread(self.recorder.store.mark_tracked, since)
        except Exception as err:
            self._unmarked = self._later(since, self._unmarked or {})
            log.warning(
                "could not record when tasks were added; trying again with the next pass",
                extra={"fields": {"tasks": len(since), "error": str(err)}},
            )

    @staticmethod
    def _later(marks: dict[str, datetime], newer: dict[str, datetime]) -> dict[str, datetime]:
        """``marks`` and ``newer`` together, the later of the two for a key in both."""
        return {**marks, **{key: max(at, marks.get(key, at)) for key, at in newer.items()}}

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
        ``record_superseded`` is False: a task resumed or changed while crontask runs, whose
        slots missed while suspended, or of another schedule, leave no record, as its latest
        one past the deadline does not either)."""
        self.recorded_ahead(definition.key, anchor)  # a clock gone back: its refusals say so
        if not record_superseded:
            self.periods.changed(definition.key, anchor, until)
        missed = self.ledger.catch_up(definition, anchor, until)
        if missed.superseded is not None and record_superseded:
            self._skip_slots(definition, missed.superseded)
        if missed.latest is None:
            return
        deadline = definition.task.spec.starting_deadline_seconds
        late = (self.clock() - missed.latest).total_seconds()
        if not record_superseded and deadline is not None and late > deadline:
            return  # as a resumed CronJob: it creates nothing for a slot past its deadline
        self.fire(definition, missed.latest, Trigger.CATCHUP)

    # -- a second stop signal ----------------------------------------------------------------

    async def _complete(
        self, definition: Definition | None, active: ActiveRun, outcome: Outcome
    ) -> RunRecord | None:
        """As ``RunExecution._complete``; a command killed by a second stop signal says so
        (``RunStops._kill_now``), whatever was ending it: the shutdown, or its timeout or a
        stop (``Replace``, another replica) whose kill grace the signal cut short. Only when
        the kill ended it (``CommandRun.cut``): one that had exited by itself was not killed,
        and what it left, if the kill ended that, is what the note names."""
        record = active.record
        note = _hurried_note(active.attempt)
        if note is not None and (record.id, record.attempt) in self._killed:
            outcome = dataclasses.replace(outcome, message=f"{outcome.message}; {note}")
        return await super()._complete(definition, active, outcome)


def _hurried_note(attempt: Attempt | None) -> str | None:
    """What a second stop signal's kill ended of this attempt, said in its record."""
    if not isinstance(attempt, CommandRun) or attempt.cut is None:
        return None
    return _HURRIED_NOTES[attempt.cut]
