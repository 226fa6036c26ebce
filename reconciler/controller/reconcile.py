"""One reconcile pass, level-triggered.

A pass re-reads what may have changed, assembles the desired state from every source, plans
against what the scheduler holds, applies the plan, and accounts for the slots the changes
touch. Running it twice changes nothing. :meth:`Reconciler.run_pass` returns a
:class:`PassResult` and never raises: the result says whether the pass failed, and observers
(metrics, status reporting, logs) subscribe to every result. What to do about a failure (requeue
with backoff) is the caller's: see ``controller.loop``.

Downtime accounting: the run store's last recorded slot of each task (``anchors``; or when the
task was last added without catching anything up, if later: ``RunStore.mark_tracked``) is handed
in at start-up and kept until a pass has applied; only then do the tasks it added catch up on
the slots they missed, so a first pass that fails loses no catch-up and no ``Superseded`` record.

Replicas: with an :class:`~reconciler.core.assignment.Assignment`, the scheduler gets only the
tasks this replica owns; every replica reads every source the same way. A change of ownership
(``assign``) makes the next pass compare everything: tasks that come here catch up from their
last recorded slot, as at start-up, and are *inherited* (their previous owner may still run one
of their runs, see ``controller.handover``); tasks that go elsewhere leave the scheduler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from reconciler.aio import in_thread
from reconciler.controller.active import HANDED_OVER, TASK_CHANGED, TASK_REMOVED
from reconciler.controller.dispatch import Dispatcher
from reconciler.core.assignment import Assignment
from reconciler.core.desired import Definition, DesiredState, assemble, reassemble
from reconciler.core.model import retry_hash
from reconciler.core.plan import Operation, Plan, Step, plan
from reconciler.core.problem_lines import ProblemLines, Told
from reconciler.core.schedule.cronjob import cronjob_difference
from reconciler.core.schedule.jitter import jitter_offset
from reconciler.scheduling.base import Scheduler
from reconciler.sources.base import Source

log = logging.getLogger("crontask.controller")

_VERB = {
    Operation.ADD: "task added",
    Operation.UPDATE: "task updated",
    Operation.REMOVE: "task removed",
}

# What a pass is asked to re-read: source kind -> the paths or keys an event named. None as a
# whole means everything (a resync).
Hints = Mapping[str, Collection[str]]
Clock = Callable[[], datetime]


@dataclasses.dataclass(frozen=True, slots=True)
class PassResult:
    hints: Hints | None  # what the pass was asked to re-read (None: everything)
    plan: Plan
    desired: DesiredState
    seconds: float
    keys: frozenset[str] | None = None  # the keys compared (None: all)
    error: BaseException | None = None  # the pass failed: nothing after the failure happened

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def resync(self) -> bool:
        return self.hints is None


PassObserver = Callable[[PassResult], None]


class Reconciler:
    def __init__(
        self,
        sources: Sequence[Source],
        scheduler: Scheduler,
        dispatcher: Dispatcher,
        *,
        allow_empty: bool = False,
        anchors: Mapping[str, datetime] | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.sources = list(sources)
        self.scheduler = scheduler
        self.dispatcher = dispatcher
        self.allow_empty = allow_empty
        self.desired = DesiredState(tasks={})
        self.clock = clock
        # Start-up anchors (each task's last recorded slot), until a pass has applied.
        self._anchors: Mapping[str, datetime] | None = anchors
        self._scheduler_started = False
        self.assignment: Assignment | None = None
        self._handover = False  # the next applied pass follows a change of ownership
        # Every declared task's key (anyone's), and when those not there at the first applied
        # pass were first read: they have no slot from before (``appeared``). What the first
        # pass reads was there for an unknown while.
        self._known: set[str] = set()
        self._appeared: dict[str, datetime] = {}
        # The start-up anchors of the tasks the first pass did not declare while some file could
        # not be read, until every file is read again (``_unread_anchors``).
        self._unread: dict[str, datetime] = {}
        # How many applied passes after the first declared a task not declared before (the
        # heartbeat looks then for its runs another crontask found dead and told nobody of).
        self.arrivals = 0
        # The removals the last applied pass held back (every source read empty): each pass
        # compares them too, so the one that ends the hold applies them (see apply).
        self._held: frozenset[str] = frozenset()
        self._observers: list[PassObserver] = []
        self._problems = ProblemLines()  # those logged
        self._told = Told()  # what they are about (``problem_lines.identity``)
        self._one_at_a_time = asyncio.Lock()

    def assign(self, assignment: Assignment, anchors: Mapping[str, datetime]) -> None:
        """Ownership changed (see the module docstring); ``anchors``: each task's last recorded
        slot, read from the shared store just now. The caller asks for a full pass."""
        self.assignment = assignment
        self._anchors = anchors
        self._handover = True

    def catch_up_unstarted(self, anchors: Mapping[str, datetime] | None = None) -> None:
        """The dispatcher may start runs again (this replica's renewal worked before its lease
        ran out): the tasks still its own whose slots were not started meanwhile catch up, as a
        resumed task does (the latest runs if its starting deadline allows, the older ones are
        recorded as superseded), up to just before the scheduler's next fire. A task that moved
        is caught up by its new owner; a slot another replica ran in the gap is refused by the
        store's claim. Each counts from where this replica's ledger stopped, but a task of
        ``anchors`` (handed away and back by a lapse: ``controller.lapse``) from its latest
        recorded slot there, read from the store just now, as a task that comes here does:
        another replica may have run (and recorded) the slots of the gap."""
        owned, now = self.scheduler.owned(), self.clock()
        # Taken before any is fired: one fenced again meanwhile is kept for the next lift.
        unstarted = sorted(self.dispatcher.unstarted)
        self.dispatcher.unstarted.clear()
        for key in unstarted:
            definition = owned.get(key)
            if definition is None or not self.mine(key):
                continue
            following = self.scheduler.next_fire_time(key)
            until = min(now, following - _EPSILON) if following else now
            anchor = (anchors or {}).get(key) or self.dispatcher.last_slot(key)
            self.dispatcher.catch_up(definition, anchor, until)

    def appeared(self, key: str) -> datetime | None:
        """When a task declared now was first read, if after the first applied pass (None: it
        was there from the start, since when is unknown). A task that comes from a replica
        gone since has no slot before this, whenever that replica last renewed."""
        return self._appeared.get(key)

    @property
    def applied(self) -> bool:
        """A pass has applied: the desired state has been read from every source."""
        return self._scheduler_started

    def owner(self, key: str) -> str | None:
        """The replica that schedules ``key`` (None without replicas)."""
        return self.assignment.owner(key) if self.assignment is not None else None

    def mine(self, key: str) -> bool:
        return self.assignment is None or self.assignment.mine(key)

    def subscribe(self, observer: PassObserver) -> None:
        """``observer`` gets every PassResult, on the loop. One that raises is logged and costs
        nothing else."""
        self._observers.append(observer)

    async def run_pass(self, hints: Hints | None = None) -> PassResult:
        """One pass (see the module docstring). Passes never overlap: a pass asked for while
        one runs waits for it. Reading the sources happens in a worker thread; planning and
        applying on the loop, where the scheduler and the dispatcher live."""
        async with self._one_at_a_time:
            started = time.monotonic()
            try:
                keys = await in_thread(self.refresh, hints)
                result = self.apply(keys, hints, started)
            except Exception as err:
                result = PassResult(
                    hints, Plan(), self.desired, time.monotonic() - started, error=err
                )
            self._notify(result)
            return result

    # -- the two halves of a pass (tests drive them directly) -----------------------------------

    def refresh(self, hints: Hints | None = None) -> set[str] | None:
        """Re-read sources. ``hints`` maps a source kind to the paths an event named; None
        re-reads everything (resync). Returns the keys that may have changed, or None for
        "compare everything". Blocking I/O: may run in a thread."""
        changed: set[str] = set()
        for source in self.sources:
            if hints is None:
                changed |= source.refresh(None)
            elif source.kind in hints:
                changed |= source.refresh(hints[source.kind])
        errors = (e for s in self.sources for e in s.errors())
        if hints is None:
            self.desired = assemble((d for s in self.sources for d in s.definitions()), errors)
            return None
        # An event touches a few keys: re-settle only those, so that an edit costs the same
        # at 10 000 tasks as at 100.
        self.desired = reassemble(
            self.desired,
            changed,
            (d for s in self.sources for d in s.definitions_of(changed)),
            errors,
        )
        return changed

    def apply(
        self, keys: Collection[str] | None, hints: Hints | None = None, started: float = 0.0
    ) -> PassResult:
        """Plan against the scheduler, apply, account for slots. Runs on the event loop."""
        if keys is not None and self._held:
            # Held removals are compared on every pass, not left to the next resync: the pass
            # of the event that ends the hold (a task file added back) names only its own keys,
            # yet must remove the held tasks no longer declared. While the sources stay empty
            # they are held again, and the result still says so (Jobs' housekeeping reads it).
            keys = {*keys, *self._held}
        held_before = self._held
        first = not self._scheduler_started
        everything = self.desired.tasks
        desired = everything if self.assignment is None else _Mine(everything, self.assignment)
        # The empty-set guard is about what the sources yield, not about what this replica owns.
        allow_empty = self.allow_empty or bool(everything)
        result = plan(
            desired,
            self.scheduler.owned(),
            keys=keys,
            allow_empty=allow_empty,
            authoritative=self._authoritative(),
        )
        if not result.held_removals:  # else the sources are empty and every task is kept
            self._note_appeared(everything, keys)
        for step in result.steps:
            if step.operation is not Operation.ADD:
                # Before the job changes: the changed job's first slot depends on what the
                # dispatcher decided of the slots it set aside (see before_change).
                self.dispatcher.before_change(step.key, changed=step.desired is not None)
            self.scheduler.apply(step)
            self._log_step(step)
        self._held = frozenset(result.held_removals)
        if not self._scheduler_started:
            # The first applied pass starts the scheduler: its jobs get their first fire times
            # now, before the slots they missed are accounted for below.
            self.scheduler.start()
            self._scheduler_started = True
        anchors, handover = self._anchors, self._handover
        if keys is None:
            # Only a full pass compares every task: one of a few keys (a file event, an API
            # write) coming between assign() and the full pass it asked for leaves them.
            self._anchors, self._handover = None, False
        anchors = self._unread_anchors(anchors, first, result)
        account_for_slots(
            result.steps,
            self.scheduler,
            self.dispatcher,
            self.clock(),
            anchors,
            elsewhere=lambda key: key in everything,
        )
        if handover and self.dispatcher.handover is not None:
            for step in result.of(Operation.ADD):
                self.dispatcher.handover.inherit(step.key)
        if result.held_removals and (keys is None or self._held != held_before):
            # Said by every resync and when what is held changes, not by every event's pass.
            log.warning(
                "every source is empty; keeping the running tasks (use --allow-empty to remove)",
                extra={"fields": {"held": len(result.held_removals)}},
            )
        self._report_problems()
        compared = None if keys is None else frozenset(keys)
        return PassResult(hints, result, self.desired, time.monotonic() - started, compared)

    def _unread_anchors(
        self, anchors: Mapping[str, datetime] | None, first: bool, result: Plan
    ) -> Mapping[str, datetime] | None:
        """The anchors of this pass's added tasks. A task the first pass did not declare while
        a file could not be read (a definition error), or while the sources held no task at
        all (a folder not mounted yet, a checkout not made: what ``--allow-empty`` guards
        against), may be there, not gone: declared once its file is read, it catches up from
        its last recorded slot, as at the start, not from then as a task declared anew. Once
        every file is read and some task declared, those left are anew. Without replicas:
        theirs come with each assignment."""
        unread = bool(self.desired.errors) or not (self.desired.tasks or self.allow_empty)
        if first:
            if anchors is not None and unread and self.assignment is None:
                tasks = self.desired.tasks
                self._unread = {k: at for k, at in anchors.items() if k not in tasks}
            return anchors
        if anchors is None and self._unread and self.assignment is None:
            added = [s.key for s in result.of(Operation.ADD) if s.key in self._unread]
            anchors = {key: self._unread.pop(key) for key in added} or None
        if not unread:
            self._unread = {}
        return anchors

    def _authoritative(self) -> frozenset[str]:
        """The kinds of the sources whose empty read is deliberate (``Source.authoritative``),
        whose removals the empty-set guard never holds."""
        return frozenset(s.kind for s in self.sources if s.authoritative)

    def _note_appeared(self, tasks: Mapping[str, Definition], keys: Collection[str] | None) -> None:
        # Every declared task, not only this replica's: the one that matters is another's
        # until its owner goes (its catch-up then counts from the owner's last renewal). New
        # means a key not declared before, not one edited or read again by a resync.
        if not self._scheduler_started:
            self._known = set(tasks)
            return
        if keys is None:
            new, gone = tasks.keys() - self._known, self._known - tasks.keys()
        else:
            new = {k for k in keys if k in tasks and k not in self._known}
            gone = {k for k in keys if k not in tasks and k in self._known}
        now = self.clock()
        self.arrivals += bool(new)
        for key in new:
            self._appeared[key] = now
        for key in gone:
            self._appeared.pop(key, None)
        self._known |= new
        self._known -= gone

    def _log_step(self, step: Step) -> None:
        fields: dict[str, object] = {"task": step.key, "reason": step.reason}
        message = _VERB[step.operation]
        if self.assignment is not None and step.key in self.desired.tasks:
            # Still declared: the step comes from ownership, not from a change of definition.
            if step.operation is Operation.REMOVE:
                message, fields["to"] = "task handed over", self.assignment.owner(step.key)
                fields["reason"] = "owned by another replica"
            elif step.operation is Operation.ADD and step.current is None:
                fields["owner"] = self.assignment.me
        if step.operation is Operation.UPDATE:
            fields["changed"] = ", ".join(c.path for c in step.field_changes())
        log.info(message, extra={"fields": fields})
        if (why := _cronjob_difference(step)) is not None:
            log.warning(
                "schedule differs from a CronJob's",
                extra={"fields": {"task": step.key, "schedule": why[0], "why": why[1]}},
            )
        for doubt in _http_doubts(step):
            log.warning("http action warning", extra={"fields": {"task": step.key, "why": doubt}})

    def _notify(self, result: PassResult) -> None:
        for observer in self._observers:
            try:
                observer(result)
            except Exception:
                log.exception("pass observer failed")

    def _report_problems(self) -> None:
        # Each problem is logged when it appears and when it is fixed, not on every pass, nor
        # when only its line changed (a new git revision of a file still broken the same way:
        # each commit logged every such error as resolved, then as new).
        appeared, resolved = self._told.changes(*self._problems.update(self.desired))
        for problem, _ in appeared:
            log.error("definition error", extra={"fields": {"error": problem}})
        for problem in resolved:
            log.info("definition error resolved", extra={"fields": {"error": problem}})


_EPSILON = timedelta(microseconds=1)


def _cronjob_difference(step: Step) -> tuple[str, str] | None:
    """A schedule added or changed by ``step`` that a CronJob reads otherwise, and why."""
    if step.desired is None:
        return None
    schedule = step.desired.task.spec.schedule
    if step.current is not None and step.current.task.spec.schedule == schedule:
        return None  # told when it came
    why = cronjob_difference(schedule)
    return None if why is None else (schedule, why)


def _http_doubts(step: Step) -> list[str]:
    """What an http action added or changed by ``step`` says that it does not do
    (``HttpAction.doubts``: ``crontask validate`` prints them as warnings)."""
    http = None if step.desired is None else step.desired.task.spec.http
    if http is None or (step.current is not None and step.current.task.spec.http == http):
        return []  # told when it came
    return http.doubts()


def account_for_slots(
    steps: Sequence[Step],
    scheduler: Scheduler,
    dispatcher: Dispatcher,
    now: datetime,
    anchors: Mapping[str, datetime] | None = None,
    *,
    elsewhere: Callable[[str], bool] = lambda key: False,
) -> None:
    """Tell the dispatcher what a pass changed, so that every slot is accounted for.

    Removed tasks are forgotten, and a removed or changed task's runs do not retry, whether
    their retry waits or their attempt is still going (``elsewhere``: a removed key that is
    still declared went to another replica). A change of ``suspend`` alone is no change to
    the runs going: they retry as they began (a CronJob's suspend stops new Jobs, not the
    backoff retries of those running).

    Slots are counted from the task's last slot (a CronJob's ``lastScheduleTime``), never from
    the moment of a change, so that a pass means the same whenever it sees the change: live,
    or at the start after crontask was down. An added task with an anchor (its last recorded
    slot: at start-up, after a handover) catches up on the slots it missed, up to just before
    the scheduler's first fire, so that no slot is handled by both or by neither. A changed
    task does the same from the ledger's last slot, under the definition now in force: a
    resumed task runs the latest slot missed while suspended (an edit made while it was
    suspended included), a new schedule its latest slot since the last one. Neither records
    the older slots as superseded: crontask was up, and they were not slots then (suspended,
    or of another schedule). A suspended task keeps its last slot until it resumes. Any other
    added task counts skipped slots from ``now`` on.

    An added task that catches nothing up because it has no anchor (no slot recorded: new, or
    declared again after it was removed while crontask ran, or never run) is *tracked* from
    where the ledger began counting it, and the store keeps that (``Dispatcher.mark_tracked``,
    one write for the pass): the next start's anchor is the later of it and the last recorded
    slot, so a slot that fell while the task was not declared is not caught up (a CronJob
    re-created runs no slot from before it), and the first slot of a task never run, missed
    while crontask was down, is.
    """
    tracked: list[str] = []
    for step in steps:
        if step.desired is None:
            reason = HANDED_OVER if elsewhere(step.key) else TASK_REMOVED
            dispatcher.cancel_retries(step.key, reason)
            # The slot kept under Forbid for a held claim: removed, it is skipped (nobody runs
            # it); handed over, it is left unwritten, for the new owner's catch-up to claim.
            dispatcher.turned_away_drop(step.key, skip=reason != HANDED_OVER)
            dispatcher.forget(step.key)
            continue
        if step.current is not None and not _suspend_only(step.current, step.desired):
            dispatcher.cancel_retries(step.key, TASK_CHANGED)
        if step.current is not None:  # suspended too: its slot kept under Forbid is skipped
            dispatcher.turned_away_drop(step.key)
        following = scheduler.next_fire_time(step.key)
        until = min(now, following - _EPSILON) if following else now
        if anchors is not None and step.operation is Operation.ADD:
            anchor = anchors.get(step.key)
            dispatcher.catch_up(step.desired, anchor, until)
            if anchor is None:
                tracked.append(step.key)
        elif step.operation is Operation.UPDATE:
            last = dispatcher.last_slot(step.key)
            if last is not None and step.current is not None:
                last += _moved_by_jitter(step.current, step.desired)
            dispatcher.catch_up(step.desired, last, until, record_superseded=False)
        else:
            dispatcher.track(step.key, now)
            tracked.append(step.key)
    dispatcher.mark_tracked(tracked)


def _moved_by_jitter(current: Definition, desired: Definition) -> timedelta:
    """How far a new ``jitterSeconds`` moves the task's slots: its last slot is moved as far,
    so that the slot of the period that has run (13:02:19 of the 13:00 hour) is not taken for
    a slot missed under the new offset (13:05:18)."""

    def offset(definition: Definition) -> int:
        return jitter_offset(definition.key, definition.task.spec.jitter_seconds or 0)

    return timedelta(seconds=offset(desired) - offset(current))


def _suspend_only(current: Definition, desired: Definition) -> bool:
    """Whether ``desired`` differs from ``current`` in ``spec.suspend`` and nothing else: what
    the runs going hold to is the same (``retry_hash``, as a Job adopted after a restart)."""
    return retry_hash(current.task.spec) == retry_hash(desired.task.spec)


class _Mine(Mapping[str, Definition]):
    """The desired tasks this replica owns, without copying them: a pass after one edit looks
    up the keys it touched, not all of them."""

    def __init__(self, tasks: Mapping[str, Definition], assignment: Assignment) -> None:
        self._tasks = tasks
        self._assignment = assignment

    def __getitem__(self, key: str) -> Definition:
        if not self._assignment.mine(key):
            raise KeyError(key)
        return self._tasks[key]

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._tasks if self._assignment.mine(key))

    def __len__(self) -> int:
        return sum(1 for _ in self)
