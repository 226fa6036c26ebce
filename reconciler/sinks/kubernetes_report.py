"""From passes and run records to CronTask status, Events and run-now triggers.

Contract:

- Everything here is called on the event loop and returns at once: it computes the inputs of
  :func:`reconciler.core.status.derive_status` from in-memory state and hands them to the
  :class:`~reconciler.sinks.kubernetes.StatusWriter` (which coalesces, rate-limits and skips
  writes that change nothing) and to the :class:`EventRecorder`.
- :meth:`StatusReporter.after_pass` is called after every pass with the objects the
  Kubernetes source holds, the desired state, what the scheduler owns and the keys the pass
  looked at (None: all). :meth:`StatusReporter.on_run` is a dispatcher listener: every run
  record (running, finished, skipped) updates its task's status; :meth:`on_progress` hears
  the running records rewritten while they run (a Job's name and uid), without Events.
- With replicas (``mine``), only the owner of a task reports it: one writer per object.
- A task's runs (the run summary, ``active``, run Events) are its object's but when another
  location's definition is in force under its key: a CronTask that lost a conflict to a
  folder task (status: Conflict) shows none of that task's runs; its own runs still going
  then (their Jobs run on: those its stored status names, or this process saw as its own) it
  keeps showing, as active and then as lastRun, so that ``lastRun`` never says ``running``
  beside an empty ``active``. An object deleted (or found
  replaced by one of the same name, another uid) takes its runs along: those still going
  then never show on, nor send Events to, an object of that name created after it.
- Run-now: an object whose ``crontask.dev/run-now`` annotation holds a value that is neither
  handled by this process nor recorded as ``status.lastRunNow`` gets at most one manual run
  (``fire_manual``; the concurrency policy applies, a skip is recorded and reported). The value
  is written as ``status.lastRunNow`` first, ahead of every other object's status, and the run
  starts only once the API server has accepted the write that recorded it: that record is what
  keeps a restart, or another replica, from running it again. A crontask that dies between
  the write and the start (one round trip) loses the request; it never runs it twice. The
  writer's callback comes on one of its threads: ``on_loop`` hands it to the event loop.
  A value longer than ``status.MAX_RUN_NOW`` (a run-now value is a marker, such as a
  timestamp) is refused: a ``RunNowIgnored`` Event says why (once per value), no run starts
  and nothing is written; the annotation never makes the task invalid (it is no part of it).
- Fenced (a replica that could not renew its membership): the writer holds every write (its
  ``held``), so no status and no ``lastRunNow`` is written meanwhile, and no run-now starts (but
  one whose write was accepted just as the fence began, a round trip: it is not started, and
  lost, as at ``close``); a write, when it goes, goes only while its task is still this
  replica's (its ``owns``).
  :meth:`StatusReporter.resumed` (the renewal that lifts the fence, before it is lifted): what
  this process saw of the runs of the tasks it kept is stale (another replica may have run
  them meanwhile, and recorded a newer lastRun), so the status written from then on keeps what
  the object holds until a run here says more; a run-now value seen while fenced is recorded
  and run once the fence is lifted, by whichever replica owns the task then.
- A run the object's stored ``lastRun`` says is ``running`` that no run here is (its crontask
  died during it: the next start, or another's heartbeat, marked it ``interrupted`` in the
  store without a word to this reporter): the first time the task is reported, and again at
  each full pass while the status says so, that run's record is read from the store
  (``read_run``, off the loop) and, once ended, observed as any record heard is (lastRun,
  lastFailureTime). Otherwise the stored lastRun would be copied on unchanged until the
  task's next run (a day, for a nightly task). A run the store does not hold (``read_run``
  gives None: its store was replaced, a new pod's emptyDir) is shown ``interrupted``, as a
  lost run, only with ``lost_runs`` (no replicas) and for a lastRun without a Job
  (:mod:`reconciler.sinks.kubernetes_lost`: no failure, its outcome is unknown).
- :meth:`StatusReporter.close` (crontask begins to stop): no run-now starts any more, and the
  values whose record has not been written are withdrawn, so the next crontask acts on them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.core.desired import Definition, DesiredState, SourceKind
from reconciler.core.run_events import EventSpec, run_event
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.core.status import (
    ObjectRef,
    RunSummary,
    StatusInputs,
    TaskState,
    derive_status,
    run_now_due,
    run_now_recorded,
    run_now_refused,
    task_state,
    unused_spec,
)
from reconciler.sinks.kubernetes import StatusWriter, Written
from reconciler.sinks.kubernetes_events import EventRecorder
from reconciler.sinks.kubernetes_lost import Told, is_lost, lost_run, without_duration

log = logging.getLogger("crontask.sinks")

Clock = Callable[[], datetime]
# The latest attempt of a run, read from the store off the loop (None: the store answered that
# it holds no such run, and no record of this process waits for it; it raises when not known).
Read = asyncio.Future[RunRecord | None]
ReadRun = Callable[[str], Read]


class StatusReporter:
    def __init__(
        self,
        writer: StatusWriter,
        events: EventRecorder | None,
        *,
        active: Callable[[str], tuple[RunRecord, ...]],
        next_run: Callable[[str, datetime], datetime | None],
        fire_manual: Callable[[str], RunRecord | None],
        on_loop: Callable[[Callable[[], None]], None],
        clock: Clock = lambda: datetime.now(UTC),
        mine: Callable[[str], bool] = lambda key: True,
        read_run: ReadRun | None = None,
        lost_runs: bool = False,
    ) -> None:
        self._writer = writer
        self._events = events
        self._active = active
        self._next_run = next_run
        self._fire_manual = fire_manual
        self._on_loop = on_loop
        self._clock = clock
        # With replicas, only the owner of a task writes its status and Events and acts on its
        # run-now annotation: one writer per object.
        self._mine = mine
        self._refs: dict[str, ObjectRef] = {}
        self._states: dict[str, TaskState] = {}
        self._runs: dict[str, RunSummary] = {}
        self._handled: dict[str, str] = {}  # run-now values this process acted on
        self._refused: dict[str, str] = {}  # the run-now value last refused (told once)
        # Run-now values whose lastRunNow write is on its way (key -> value -> the object's
        # uid): each starts its run once that write is accepted.
        self._awaiting: dict[str, dict[str, str]] = {}
        self._closed = False  # crontask is stopping: no run-now starts
        self._invalid: dict[str, str] = {}  # the spec error last reported as an Event
        # The keys under which another location's definition is in force (a folder task won
        # a conflict): the runs there are that definition's, not the object's.
        self._foreign: set[str] = set()
        # Under such a key, the object's own runs still going (their Jobs run on): shown, as
        # active and then as lastRun, until they end (see _keep_theirs).
        self._theirs: dict[str, set[str]] = {}
        # The runs still going when their object was deleted (or found replaced by a namesake
        # with another uid): they are the old object's, never shown on a new one.
        self._retired: dict[str, set[str]] = {}
        self._read_run = read_run
        # The run read for each key whose stored lastRun says running and no run here is:
        # read once, and again at the next full pass (see _read_stale); and the keys with
        # such a read in flight (one at a time).
        self._read: dict[str, str] = {}
        self._reading: set[str] = set()
        # A run no store holds is shown lost only without replicas (see kubernetes_lost).
        self._lost_runs = lost_runs
        self._told = Told()

    def after_pass(
        self,
        refs: Mapping[str, ObjectRef],
        desired: DesiredState,
        owned: Mapping[str, Definition],
        keys: Collection[str] | None,
    ) -> None:
        self._prune_retired()
        for gone in set(self._refs) - set(refs):
            self._forget(gone)
            self._retire(gone)
            self._writer.forget(gone)
        if keys is None:
            self._read.clear()  # a stale running lastRun is read again (see _read_stale)
            # A full pass follows every change of ownership: what this process knew of a task
            # another replica owns now goes stale there (its runs, the run-now values it
            # handles), and must not be written back if the task comes back here. Its pending
            # write goes too: one still carrying a run-now value would record it as handled
            # for the new owner, which would then never run it (a write already sent may
            # still record it: that request is lost, as at ``close``).
            for key in [k for k in self._states.keys() | self._handled.keys() if not self._mine(k)]:
                self._forget(key)
                self._writer.forget(key)
        for key, ref in refs.items():
            before = self._refs.get(key)
            if before is not None and before.uid != ref.uid:
                # Deleted and created again: what was asked of the old object is not asked of
                # this one (its own annotation is acted on as new), and its runs, results and
                # reported spec error are not this one's.
                self._forget(key)
                self._retire(key)
        self._refs = dict(refs)
        targets = [k for k in (refs if keys is None else keys) if k in refs and self._mine(k)]
        for key in targets:
            ref = refs[key]
            in_force = owned.get(key)
            state = task_state(key, desired, in_force)
            self._states[key] = state
            if in_force is not None and in_force.location.source != SourceKind.KUBERNETES:
                self._foreign.add(key)
                self._keep_theirs(ref)
            else:
                self._foreign.discard(key)
                self._theirs.pop(key, None)
            self._report_invalid(ref, state)
            self._read_stale(ref)
            due = run_now_due(ref, self._handled.get(key))
            if due is not None and (why := run_now_refused(due)) is not None:
                self._refuse_run_now(ref, due, why)
                self.submit(key)
            elif due is not None and not self._closed:
                self._record_run_now(ref, due)
            else:
                self.submit(key)

    def on_run(self, record: RunRecord) -> None:
        if self._is_retired(record):
            if record.status.finished:
                self._retired[record.task].discard(record.id)  # emptied at the next pass
            return  # a deleted object's run: not the object of that name now
        ref = self._refs.get(record.task)
        if ref is None or not self._mine(record.task):
            return  # a task from another source, or another replica's now
        theirs = self._theirs.get(record.task, set())
        if record.task in self._foreign and record.id not in theirs:
            return  # another location's definition runs under this key (a conflict it lost)
        if record.status.finished:
            theirs.discard(record.id)
        self._runs[record.task] = self._runs.get(record.task, RunSummary()).observe(record)
        event = run_event(record)
        if event is not None:
            self._emit(ref, event)
        # The dispatcher notifies a finished record before it drops the run from its active
        # ones: the run is over, whatever the active list still says.
        self.submit(record.task, ended=record.id if record.status.finished else None)

    def on_progress(self, record: RunRecord) -> None:
        """A running record that says more (a Job's name and uid once it exists; a run
        adopted from an earlier crontask): the status shows it, no Event is worth it."""
        if record.task not in self._refs or not self._mine(record.task):
            return
        if self._is_retired(record) or record.task in self._foreign:
            return
        self._runs[record.task] = self._runs.get(record.task, RunSummary()).observe(record)
        self.submit(record.task)

    def close(self) -> None:
        """crontask begins to stop (before any part of it stops): no run-now starts from now
        on, and the values whose lastRunNow write has not gone out are withdrawn (the newest
        status, without them, replaces the pending write), so the next crontask acts on them.
        One write already on its way may still record its value: that request is lost, and
        logged (the runs are stopping: a run could not start anyway)."""
        self._closed = True
        for key in self._awaiting:
            self._handled.pop(key, None)
            self.submit(key)

    def resumed(self, keys: Collection[str]) -> None:
        """This replica's fence is about to lift, ``keys`` the tasks it kept through it: the
        runs it saw of them are forgotten (another replica may have run them meanwhile) and
        their status submitted again, replacing the writes held since (built from those runs),
        before any of them may go out."""
        for key in keys:
            if self._runs.pop(key, None) is not None:
                self.submit(key)

    def submit(self, key: str, ended: str | None = None, *, written: Written | None = None) -> None:
        """Hand the task's current inputs to the writer (a no-op write is never sent); with
        ``written``, ahead of other objects' writes, told when it is written."""
        ref = self._refs.get(key)
        if ref is None:
            return
        now = self._clock()
        # The runs under this key are the object's, but for those of a definition elsewhere
        # that won a conflict over it, and those of a deleted object of the same name.
        runs = self._runs.get(key, RunSummary())  # only ever the object's own (on_run)
        retired = self._retired.get(key, ())
        active = tuple(r for r in self._active(key) if r.id != ended and r.id not in retired)
        if key in self._foreign:
            theirs = self._theirs.get(key, set())
            active = tuple(r for r in active if r.id in theirs)
        inputs = StatusInputs(
            generation=ref.generation,
            state=self._states.get(key, TaskState()),
            runs=runs,
            active=active,
            next_run=self._next_run(key, now),
            run_now=self._handled.get(key),
        )
        clock = self._clock
        shown = without_duration if is_lost(runs.latest) else lambda status: status
        self._writer.submit(
            ref,
            lambda current: shown(derive_status(current, inputs, clock())),
            urgent=written is not None,
            written=written,
        )

    def _keep_theirs(self, ref: ObjectRef) -> None:
        """Of the runs going under a key another location's definition won, those that are the
        object's own: the ones its stored status names (its running lastRun, its active list;
        what a restart knows) or that this process saw last as its own."""
        key, status = ref.key, ref.status
        named = {str(a.get("name")) for a in status.get("active") or () if isinstance(a, Mapping)}
        last = status.get("lastRun")
        if isinstance(last, Mapping) and last.get("result") == str(RunStatus.RUNNING):
            named.add(str(last.get("id")))
        seen = self._runs.get(key, RunSummary()).latest
        if seen is not None and not seen.status.finished:
            named.add(seen.id)
        going = {r.id for r in self._active(key)}
        theirs = self._theirs.get(key, set()) & going
        theirs |= {r.id for r in self._active(key) if r.id in named or _job_name(r) in named}
        self._theirs[key] = theirs

    def _read_stale(self, ref: ObjectRef) -> None:
        """Read the run the stored lastRun says is running, when nothing here says more of
        the task's runs and no run here is that one: a crontask that died during it left it
        so, and the record the store holds now (``interrupted``) reached no listener."""
        key, last = ref.key, ref.status.get("lastRun")
        if self._read_run is None or key in self._runs or key in self._foreign:
            return
        if not isinstance(last, Mapping) or last.get("result") != str(RunStatus.RUNNING):
            return
        run_id = last.get("id")
        if not isinstance(run_id, str) or self._read.get(key) == run_id or key in self._reading:
            return
        if any(r.id == run_id for r in self._active(key)):
            return  # going here (adopted): its records come as any run's
        self._reading.add(key)
        uid = ref.uid
        reading = self._read_run(run_id)
        reading.add_done_callback(lambda read: self._stale_read(key, uid, run_id, read))

    def _stale_read(self, key: str, uid: str, run_id: str, read: Read) -> None:
        self._reading.discard(key)
        self._take_read(key, uid, run_id, read)
        if not self._reading:
            self._told.say()  # the lost runs of this batch of reads (a pass's), in one line

    def _take_read(self, key: str, uid: str, run_id: str, read: Read) -> None:
        if read.cancelled():
            return  # crontask is stopping
        error = read.exception()
        if error is not None:  # read again at the next pass
            log.warning(
                "status: could not read the run its lastRun says is running; will try again",
                extra={"fields": {"task": key, "run": run_id, "error": str(error)[:200]}},
            )
            return
        record = read.result()
        self._read[key] = run_id
        ref = self._refs.get(key)
        if ref is None or ref.uid != uid or not self._mine(key) or key in self._foreign:
            return  # gone, replaced, or another's meanwhile
        if record is None:
            if self._lost_runs:
                self._lost(ref, run_id)
            return
        if record.task != key or not record.status.finished:
            return  # another's, or still running (its end is heard, or read again)
        if self._is_retired(record):
            return
        ended = RunSummary().observe(record)
        seen = self._runs.get(key)
        if seen is not None:
            # A run heard here since is the latest; the one read still counts when it failed.
            ended = dataclasses.replace(seen, last_failure=_last_failure(seen, ended))
        self._runs[key] = ended
        self.submit(key)

    def _lost(self, ref: ObjectRef, run_id: str) -> None:
        """The run the stored lastRun says is running is in no store: shown ``interrupted``
        unless a run heard here since says more, or it is going here after all."""
        key, last = ref.key, ref.status.get("lastRun")
        if key in self._runs or any(r.id == run_id for r in self._active(key)):
            return
        if not isinstance(last, Mapping) or last.get("id") != run_id:
            return  # the status moved on meanwhile
        lost = lost_run(key, last, self._clock())
        if lost is None:
            return  # a Job's: it may still run
        self._told.add(key)
        # Its latest alone: a lost run is no failure (its outcome is unknown).
        self._runs[key] = RunSummary(latest=lost)
        self.submit(key)

    def _retire(self, key: str) -> None:
        """The object of ``key`` is gone: its runs still going stay its own."""
        ids = {r.id for r in self._active(key)}
        if ids:
            self._retired.setdefault(key, set()).update(ids)

    def _is_retired(self, record: RunRecord) -> bool:
        return record.id in self._retired.get(record.task, ())

    def _prune_retired(self) -> None:
        """Drop the retired runs that have ended (the dispatcher lets a run go only after
        its finished record was heard)."""
        for key in list(self._retired):
            going = {r.id for r in self._active(key)}
            self._retired[key] &= going
            if not self._retired[key]:
                del self._retired[key]

    def _forget(self, key: str) -> None:
        self._states.pop(key, None)
        self._runs.pop(key, None)
        self._handled.pop(key, None)
        self._refused.pop(key, None)
        self._awaiting.pop(key, None)
        self._invalid.pop(key, None)
        self._foreign.discard(key)
        self._theirs.pop(key, None)
        self._read.pop(key, None)

    def _refuse_run_now(self, ref: ObjectRef, value: str, why: str) -> None:
        """A run-now value not acted on (nor written to the status, which would carry it on):
        said once per value (again after a restart, which cannot know it was said)."""
        if self._refused.get(ref.key) == value:
            return
        self._refused[ref.key] = value
        log.warning("run-now ignored", extra={"fields": {"task": ref.key, "reason": why}})
        self._emit(ref, EventSpec("Warning", "RunNowIgnored", f"run-now ignored: {why}"))

    def _record_run_now(self, ref: ObjectRef, value: str) -> None:
        """Write ``value`` as ``status.lastRunNow``; the run starts once the API server has
        accepted that write (:meth:`_recorded`), never before."""
        key, uid = ref.key, ref.uid
        self._handled[key] = value  # not acted on twice while its write is on its way
        self._awaiting.setdefault(key, {})[value] = uid

        def written(patch: Mapping[str, Any] | None) -> None:  # on a writer thread
            self._on_loop(lambda: self._recorded(key, value, uid, patch))

        self.submit(key, written=written)

    def _recorded(self, key: str, value: str, uid: str, patch: Mapping[str, Any] | None) -> None:
        """The write that carried ``value`` is done with: start its run if that write is the
        one that recorded it, on the same object, which is still this process's to run."""
        awaiting = self._awaiting.get(key, {})
        if awaiting.get(value) != uid:
            return  # forgotten meanwhile: deleted, created again, or another replica's now
        del awaiting[value]
        if not awaiting:
            self._awaiting.pop(key, None)
        ref = self._refs.get(key)
        if ref is None or ref.uid != uid or not self._mine(key):
            return  # gone, or another replica's now (its write dropped): that one acts on it
        recorded = run_now_recorded(patch, value)
        fields = {"task": key, "value": value}
        if self._closed:
            if recorded:  # withdrawn too late: its write was on its way
                log.warning(
                    "run-now recorded but not started: crontask is stopping",
                    extra={"fields": fields},
                )
            return
        if not recorded:
            # Recorded already (by another replica, or by an earlier write whose answer was
            # lost), replaced by a newer value before its write went out, or refused: not
            # run here.
            log.warning(
                "run-now not started: its status write did not record it",
                extra={"fields": {**fields, "recorded": (patch or {}).get("lastRunNow")}},
            )
            return
        self._run_now(ref, value)

    def _run_now(self, ref: ObjectRef, value: str) -> None:
        record = self._fire_manual(ref.key)
        log.info(
            "run-now requested",
            extra={
                "fields": {
                    "task": ref.key,
                    "value": value,
                    "run": record.id if record else None,
                    "status": str(record.status) if record else None,
                }
            },
        )
        if record is None:
            self._emit(
                ref,
                EventSpec(
                    "Warning", "RunNowIgnored", "run-now ignored: no valid spec is scheduled"
                ),
            )

    def _report_invalid(self, ref: ObjectRef, state: TaskState) -> None:
        if state.invalid is None:
            self._invalid.pop(ref.key, None)
            return
        if self._invalid.get(ref.key) == state.invalid:
            return
        self._invalid[ref.key] = state.invalid
        self._emit(ref, EventSpec("Warning", *unused_spec(state.invalid, state.invalid_kind)))

    def _emit(self, ref: ObjectRef, event: EventSpec) -> None:
        if self._events is not None:
            self._events.emit(ref, event, self._clock())


def _job_name(record: RunRecord) -> str | None:
    return record.job.name if record.job is not None else None


def _last_failure(one: RunSummary, other: RunSummary) -> datetime | None:
    times = [t for t in (one.last_failure, other.last_failure) if t is not None]
    return max(times, default=None)
