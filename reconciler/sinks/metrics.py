"""Prometheus metrics of the reconciler and its runs, produced at scrape time from a snapshot.

The controller reports events through a small API, each call O(1) on the event loop under a
lock held for a few dictionary operations: :meth:`Metrics.on_run` (the dispatcher's run
listener), :meth:`Metrics.on_progress` (its progress listener: a run adopted here, whose start
no one here heard), :meth:`Metrics.reconciled` (after each pass), :meth:`Metrics.pruned`
(retention), with replicas :meth:`Metrics.replicas` and :meth:`Metrics.handed_over`, without
them on Kubernetes :meth:`Metrics.single_lease` (another crontask seen running); once
at start-up, :meth:`Metrics.crashed` (the runs the crontask before it left, marked interrupted).

At each scrape (:meth:`Metrics.render` for ``/metrics``, :meth:`Metrics.collect` for a
prometheus_client registry) the metrics read

- a :class:`TaskSnapshot`, the scheduler's ``snapshot()``: the tasks in force, each with its
  definition, next slot and current interval, as the scheduler already holds them (no next fire
  time is computed per scrape);
- each task's slot before its latest one (``metrics_slots.SlotsBeforeLast``), worked out from
  its schedule only when its next slot moved other than by one slot since the last scrape, and
  held back after a resume or a schedule edit until two slots have come under the change (the
  scrape's wall-clock time says when it was seen);
- ``sources()``: the revision and last sync of each pulling source (git);
- ``run_store()``: whether the run store answers, and the run records waiting for it or
  dropped, as this process last saw them (it never waits for the store: it starts a check when
  the last answer is over a second old and gives the one before, so without readiness probes
  the value is one scrape old; a store that is down or hangs does not hold a scrape up);
- their per-task run state (``metrics_runs.RunState``, under the same lock): kept up to date
  by :meth:`Metrics.on_run` and :meth:`Metrics.on_progress`; a task that comes into the
  snapshot starts from its last outcomes in the run history (``history``), with its runs that
  the history says are in progress elsewhere, read in a thread that a scrape starts and waits
  for a second at most (a store that hangs does not hold scrapes up), and checked again now
  and then in a thread that no scrape waits for. Each task's series are exported by the
  process whose snapshot holds it (its owner, with replicas) only, so a run shows once, there,
  wherever it runs; there its end is counted too, whoever heard it (another replica, which
  no longer exports the task; the crontask that found its process dead).

They copy all of it (dictionary copies, under the lock; each task's next slot and interval are
read from the scheduler's copy as the scrape formats it), then format the copy in the calling
thread: the API's worker thread, never the event loop. A scrape writes nothing but its own
copy (and, under the lock, drops the run state of tasks that are gone and have no attempt in
progress here), so two scrapes cannot race; a scrape holds up a run record no longer than
those copies take. Each record's lines are written when it arrives (a few µs on the loop), so a
scrape formats only what the scheduler's snapshot holds (next run, interval) and joins the
rest.
Each instance owns a private ``CollectorRegistry`` (``registry``) holding only itself, so tests
and several instances in one process do not collide.

Which series exist, and the rule for what a task costs: ``metrics_exposition`` and the README
("Metrics").

This is an adapter: it knows the core's definitions and run records, and nothing of the
controller, the scheduler or the API, whose state reaches it through the Protocols below.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.desired import Conflict, Definition, DefinitionError, DesiredState
from reconciler.core.problem_lines import Problem, subject
from reconciler.core.runs import RunRecord, RunStatus, Trigger, died
from reconciler.sinks.metrics_elsewhere import History, UnheardEnds
from reconciler.sinks.metrics_exposition import exposition
from reconciler.sinks.metrics_families import (
    DELAY_BUCKETS,
    RECONCILE_BUCKETS,
    RUN_BUCKETS,
    HistogramValue,
    Replicas,
    RunStoreState,
    Scrape,
    SourceSync,
    TaskSlot,
)
from reconciler.sinks.metrics_runs import RunState, in_thread
from reconciler.sinks.metrics_slots import SlotsBeforeLast

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
GZIP_LEVEL: Final = 1  # a fifteenth of the text, in a third of level 6's time; frees the GIL
_REPLACED: Final = "Replaced"  # the reason of a run that Replace stopped (controller.active)
_REPLACED_KEPT: Final = 10_000  # tasks whose replaced run's end awaits their next start
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class TaskSnapshot(Protocol):
    """The tasks in force, read at each scrape (the scheduler implements it).

    ``snapshot`` returns ``{key: (definition, next fire time, interval in seconds)}`` (None: no
    next slot), the tasks of one instant, which no one else changes. It is called from the
    scrape's thread, so it must be safe there, and cheap: a copy of what is already held, not a
    computation per task.
    """

    def snapshot(self) -> Mapping[str, TaskSlot]: ...


class SourceLike(Protocol):
    """What the metrics read of a source (``controller.view.SourceStatus`` has it)."""

    @property
    def kind(self) -> str: ...
    @property
    def revision(self) -> str | None: ...
    @property
    def last_sync(self) -> datetime | None: ...
    @property
    def sync_failures(self) -> int: ...


class MemoryTasks:
    """The in-memory twin of a :class:`TaskSnapshot`: tasks set by hand, for tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, TaskSlot] = {}

    def set(
        self,
        definition: Definition,
        next_fire: datetime | None = None,
        interval: float | None = None,
    ) -> None:
        with self._lock:
            self._slots[definition.key] = (definition, next_fire, interval)

    def remove(self, key: str) -> None:
        with self._lock:
            self._slots.pop(key, None)

    def snapshot(self) -> dict[str, TaskSlot]:
        with self._lock:
            return dict(self._slots)


class Metrics:
    """The reconciler's metrics. The reporting methods run on the event loop; ``render`` and
    ``collect`` in any thread, any number at a time. ``clock`` and ``spawn`` space and start
    the checks of runs in progress elsewhere, ``seed_spawn`` the reads of the tasks new to the
    snapshot (``metrics_runs.RunState``); from ``started`` (Unix time; None: when
    ``metrics_elsewhere`` was imported) the runs a dead crontask left count
    (``metrics_elsewhere.UnheardEnds``). ``run_store`` is called at each scrape, in its
    thread: it must read what is held, never ask the store."""

    def __init__(
        self,
        tasks: TaskSnapshot | None = None,
        *,
        sources: Callable[[], Iterable[SourceLike]] | None = None,
        history: History | None = None,
        owner: str | None = None,
        per_task_histograms: bool = False,
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[[Callable[[], None]], None] = in_thread,
        seed_spawn: Callable[[Callable[[], None]], None] = in_thread,
        started: float | None = None,
        run_store: Callable[[], RunStoreState] | None = None,
    ) -> None:
        self._tasks = tasks
        self._sources = sources
        self._run_store = run_store
        self.per_task_histograms = per_task_histograms
        self._lock = threading.Lock()
        # The ends this process does not hear, read from the history (``metrics_elsewhere``).
        self._unheard = None
        if history is not None:
            self._unheard = UnheardEnds(
                history, owner=owner, clock=clock, spawn=spawn, started=started
            )
        # The run state shares the lock, so that a scrape copies it with the values below at
        # one instant, and a record changes it and the run histograms together.
        self._runs = RunState(
            self._lock,
            history=history,
            owner=owner,
            unheard=self._unheard,
            per_task_histograms=per_task_histograms,
            seed_spawn=seed_spawn,
        )
        self._slots = SlotsBeforeLast()
        # Each task's last replaced run's end, until its next scheduled start (``on_run``).
        self._replaced: dict[str, datetime] = {}
        # The tasks every source declares, as of the last successful pass: a task that comes to
        # the snapshot undeclared at the scrape before was declared anew (``metrics_slots``).
        self._declared: Mapping[str, object] | None = None
        self._problems: frozenset[str] = frozenset()
        self._definition_errors: dict[str, int] = {}
        self._counted: tuple[tuple[DefinitionError, ...], tuple[Conflict, ...]] = ((), ())
        self._reconciles = {"success": 0, "error": 0}
        self._reconcile_seconds = HistogramValue.empty(RECONCILE_BUCKETS)
        self._run_seconds = HistogramValue.empty(RUN_BUCKETS)
        self._start_delay = HistogramValue.empty(DELAY_BUCKETS)
        self._pruned = 0
        self._last_prune: float | None = None
        self._prune_seconds = HistogramValue.empty(RECONCILE_BUCKETS)
        self._replicas: Replicas | None = None
        self._single_lease_conflict: bool | None = None
        self._notifications: dict[tuple[str, str], int] = {}
        self._notifications_queued: dict[str, int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- runs -------------------------------------------------------------------------------

    def on_run(self, record: RunRecord) -> None:
        """The dispatcher's run listener: an attempt started (``running``) or ended, or a slot
        was skipped. Call it from one thread (the event loop). The start delay is observed for
        the first attempt of a scheduled slot only: retries, catch-ups and manual runs are not
        scheduler lag; nor is the wait of a ``Replace`` slot for the run it replaces to stop
        (TERM, then KILL after --kill-grace): it counts from the later of the slot and the end
        of the task's last replaced run."""
        if record.status is RunStatus.RUNNING:
            delay = None
            if record.trigger is Trigger.SCHEDULE and record.attempt == 1 and record.started_at:
                since = max(record.scheduled_at, self._replaced.pop(record.task, _EPOCH))
                delay = max((record.started_at - since).total_seconds(), 0.0)
            self._started(record, delay)
        else:
            if record.reason == _REPLACED and record.finished_at is not None:
                if len(self._replaced) >= _REPLACED_KEPT:
                    self._replaced.clear()  # tasks removed before their next start
                self._replaced[record.task] = record.finished_at
            self._finished(record)

    def on_progress(self, record: RunRecord) -> None:
        """The dispatcher's progress listener: a running attempt rewritten (its Job's name and
        uid), or a run adopted here (left running by an earlier crontask or another replica),
        whose start this process never heard. It counts as running from its ``started_at``;
        an attempt counted already is not counted again, and no start delay is observed (its
        start was not this process's)."""
        if record.status is RunStatus.RUNNING:
            self._started(record, None)

    def _started(self, record: RunRecord, delay: float | None) -> None:
        with self._lock:
            # The delay is observed with the run state, in one hold: a scrape sees both or neither.
            if self._runs.started(record) and delay is not None:
                self._start_delay = self._start_delay.observe(delay)

    def _finished(self, record: RunRecord) -> None:
        seconds = None
        # A run of this replica that another marked interrupted while this one was frozen past
        # its lease (``died``, heard once it resumed: ``controller.disowned``) ended here, but
        # its end is when it was found, the freeze in it, and the replica its task went to
        # counts it (``metrics_elsewhere``): no duration, and not counted again here.
        disowned = died(record)
        if record.started_at is not None and record.finished_at is not None and not disowned:
            seconds = max((record.finished_at - record.started_at).total_seconds(), 0.0)
        with self._lock:
            self._runs.finished(record, seconds, counted=not disowned)
            if seconds is not None:
                self._run_seconds = self._run_seconds.observe(seconds)

    # -- passes, retention, sources ---------------------------------------------------------

    def reconciled(self, ok: bool, seconds: float, desired: DesiredState | None = None) -> None:
        """A pass ended. ``desired`` (that of a successful pass) sets the definition errors by
        source kind and which tasks are in state ``Error``; after a failed pass they stay as
        the last successful pass left them. O(tasks + errors + conflicts), when the errors or
        conflicts changed."""
        counted = None
        if desired is not None:
            self._declared = desired.tasks  # never changed in place: read by scrapes as it is
            if not self._same_problems(desired):
                counted = _problem_counts(desired)
        with self._lock:
            self._reconciles["success" if ok else "error"] += 1
            self._reconcile_seconds = self._reconcile_seconds.observe(max(seconds, 0.0))
            if counted is not None:
                self._definition_errors, self._problems = counted

    def _same_problems(self, desired: DesiredState) -> bool:
        # A pass hands on the problem objects it did not touch (``desired.reassemble``): an
        # edit among 100 000 definition errors does not count them all again.
        same = self._counted == (desired.errors, desired.conflicts)
        self._counted = (desired.errors, desired.conflicts)
        return same

    def pruned(self, deleted: int, seconds: float, finished_at: float) -> None:
        with self._lock:
            self._pruned += deleted
            self._prune_seconds = self._prune_seconds.observe(max(seconds, 0.0))
            self._last_prune = finished_at

    def replicas(
        self,
        members: int,
        disagreeing: bool,
        fenced: bool = False,
        clock_offset: float | None = None,
    ) -> None:
        """With --ha, after each membership renewal and when the fence goes on or off
        (``fenced``: this replica starts no runs; ``clock_offset``: seconds its clock is ahead of
        the database's, ``membership.clock``). The first comes after this replica took its
        first share of the tasks: the runs in progress at the others are read then, as after
        a handover."""
        with self._lock:
            joined = self._replicas is None
            handovers = self._replicas.handovers if self._replicas else 0
            self._replicas = Replicas(members, handovers, disagreeing, fenced, clock_offset)
        if joined and self._unheard is not None:
            self._unheard.moved(time.time())

    def handed_over(self, moved: int) -> None:
        """``moved`` tasks changed owner at a change of replicas: the runs of those that
        came here that end before they are read here are counted here
        (``metrics_elsewhere.UnheardEnds.moved``)."""
        with self._lock:
            now = self._replicas or Replicas(0, 0, False)
            self._replicas = dataclasses.replace(now, handovers=now.handovers + moved)
        if self._unheard is not None:
            self._unheard.moved(time.time())

    def single_lease(self, conflict: bool) -> None:
        """Without --ha, with --kubernetes (``membership.single``): whether another crontask
        without --ha is seen running the same CronTasks. The gauge is exported from the first
        call (0 at start)."""
        with self._lock:
            self._single_lease_conflict = conflict

    def crashed(self, records: Iterable[RunRecord]) -> None:
        """The runs this process marked ``interrupted`` at start-up because the crontask before
        it died during them (``controller.instance.Recovery``: those it tells of, and those
        waiting for the store): counted in ``crontask_runs_total`` with their task's first
        read, once each, also when the store's runs nobody told of hold one too. Call it
        before the first scrape (``metrics_elsewhere.UnheardEnds.crashed``)."""
        if self._unheard is not None:
            self._unheard.crashed(records)

    def notification_receivers(self, names: Iterable[str], results: Iterable[str]) -> None:
        """With --notifications: every (receiver, result) counter, and every receiver's
        queue gauge, starts at 0."""
        with self._lock:
            for name in names:
                self._notifications_queued.setdefault(name, 0)
                for result in results:
                    self._notifications.setdefault((name, result), 0)

    def notified(self, receiver: str, result: str) -> None:
        """A notification message ended: ``sent``, ``failed`` or ``dropped``."""
        with self._lock:
            key = (receiver, result)
            self._notifications[key] = self._notifications.get(key, 0) + 1

    def notifications_queued(self, receiver: str, count: int) -> None:
        """The messages waiting in ``receiver``'s queue now, after each change of it: a
        backlog that builds shows before the queue is full and drops."""
        with self._lock:
            self._notifications_queued[receiver] = count

    # -- scrapes ----------------------------------------------------------------------------

    def scrape(self) -> Scrape:
        """Everything a scrape shows, copied at one instant (next slots and intervals are read
        as the scrape formats them). Run state of tasks that are gone is dropped here (the
        next scrape is the first to notice they are gone). Tasks whose history is still being
        read show as tasks with no history yet (``metrics_runs.RunState.seed`` says why)."""
        with self._lock:
            began = self._runs.seq
        tasks = self._tasks.snapshot() if self._tasks is not None else {}
        self._runs.seed(tasks)
        # The wall clock after the snapshot: a change of a task's slots that the snapshot
        # holds took effect before this instant (``metrics_slots``: since when it counts).
        slots_before_last = self._slots.read(tasks, time.time(), self._declared)
        sources = [
            SourceSync(
                s.kind,
                s.revision,
                s.last_sync.timestamp() if s.last_sync else None,
                s.sync_failures,
            )
            for s in (self._sources() if self._sources is not None else ())
        ]
        run_store = self._run_store() if self._run_store is not None else None
        with self._lock:
            runs = self._runs.copy()
            scrape = Scrape(
                tasks=tasks,
                runs=runs,
                problems=self._problems,
                definition_errors=dict(self._definition_errors),
                reconciles=dict(self._reconciles),
                reconcile_seconds=self._reconcile_seconds,
                run_seconds=self._run_seconds,
                start_delay=self._start_delay,
                per_task_histograms=self.per_task_histograms,
                sources=sources,
                pruned_records=self._pruned,
                last_prune=self._last_prune,
                prune_seconds=self._prune_seconds,
                replicas=self._replicas,
                single_lease_conflict=self._single_lease_conflict,
                notifications=dict(self._notifications),
                notifications_queued=dict(self._notifications_queued),
                slots_before_last=slots_before_last,
                run_store=run_store,
            )
        self._runs.prune(runs, tasks, began)
        return scrape

    def render(self, accept_encoding: str = "") -> tuple[bytes, dict[str, str]]:
        """The text exposition (format 0.0.4) and its response headers; gzip-encoded when
        ``accept_encoding`` (the request's ``Accept-Encoding``) allows it, as Prometheus'
        does."""
        body = exposition(self.scrape()).encode()
        headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
        if accepts_gzip(accept_encoding):
            body = zlib.compress(body, GZIP_LEVEL, wbits=31)
            headers["Content-Encoding"] = "gzip"
        return body, headers

    def collect(self) -> Iterator[Metric]:
        """The prometheus_client Collector protocol: the families of :meth:`render`'s text."""
        yield from text_string_to_metric_families(exposition(self.scrape()))


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value accepts gzip (RFC 9110 §12.5.3: ``gzip`` named
    with a non-zero weight, or not named and ``*`` allowed)."""
    weights: dict[str, float] = {}
    for part in header[:1024].split(","):
        coding, _, parameters = part.partition(";")
        weight = 1.0
        name, _, value = parameters.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        weights[coding.strip().lower()] = weight
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


def _problem_counts(desired: DesiredState) -> tuple[dict[str, int], frozenset[str]]:
    """The definition errors by source kind, and the tasks in state ``Error``: those a
    problem names, and those kept on their last good definition because the text where they
    are declared no longer reads (a file's syntax error names no task), as the API shows them."""
    errors: dict[str, int] = {}
    flagged = {key for key, definition in desired.tasks.items() if definition.error is not None}
    problems: list[Problem] = [*desired.errors, *desired.conflicts]
    for problem in problems:
        # A conflict counts in every kind that declares its key, as /api/v1/sources counts
        # it: the alert names the shadowed source too.
        key, kinds = subject(problem)
        for each in kinds:
            errors[each] = errors.get(each, 0) + 1
        if key:
            flagged.add(key)
    return errors, frozenset(flagged)


__all__: Sequence[str] = [
    "History",
    "MemoryTasks",
    "Metrics",
    "RunStoreState",
    "SourceLike",
    "TaskSnapshot",
    "accepts_gzip",
]
