"""Prometheus metrics of the reconciler and its runs, produced at scrape time from a snapshot.

The controller reports events through a small API, each call O(1) on the event loop under a
lock held for a few dictionary operations: :meth:`Metrics.on_run` (the dispatcher's run
listener), :meth:`Metrics.on_progress` (its progress listener: a run adopted here, whose start
no one here heard), :meth:`Metrics.reconciled` (after each pass), :meth:`Metrics.pruned`
(retention), and with replicas :meth:`Metrics.replicas` and :meth:`Metrics.handed_over`.

At each scrape (:meth:`Metrics.render` for ``/metrics``, :meth:`Metrics.collect` for a
prometheus_client registry) the metrics read

- a :class:`TaskSnapshot`, the scheduler's ``snapshot()``: the tasks in force, each with its
  definition, next slot and current interval, as the scheduler already holds them (no next fire
  time is computed per scrape);
- ``sources()``: the revision and last sync of each pulling source (git);
- their own per-task run state, kept up to date by :meth:`Metrics.on_run`; a task that comes
  into the snapshot (at start-up, or from another replica) starts from its last success and
  failure in the run history (``history``), read once for all the tasks that came, so that an
  alert on those timestamps does not go quiet because crontask restarted;
- the runs of the snapshot's tasks that the history says are in progress elsewhere (another
  replica still running the run of a task that moved here, an earlier crontask's): read when
  their task comes, and checked against the history at each scrape until they end there or
  are heard of here. Each task's series are exported by the process whose snapshot holds it
  (its owner, with replicas) only, so a run shows once, there, wherever it runs.

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
import logging
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Final, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.desired import Definition, DesiredState
from reconciler.core.runs import LastOutcomes, RunRecord, RunStatus, Trigger
from reconciler.core.status import is_failure
from reconciler.sinks.metrics_exposition import exposition, no_runs, task_runs
from reconciler.sinks.metrics_families import (
    DELAY_BUCKETS,
    FINAL_STATUSES,
    RECONCILE_BUCKETS,
    RUN_BUCKETS,
    HistogramValue,
    Replicas,
    Scrape,
    SourceSync,
    TaskRuns,
    TaskSlot,
)

log = logging.getLogger("crontask.metrics")

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
GZIP_LEVEL: Final = 1  # a fifteenth of the text, in a third of level 6's time; frees the GIL
_INDEX: Final = {status: i for i, status in enumerate(FINAL_STATUSES)}
_SEED_BATCH: Final = 256  # tasks given their last outcomes per hold of the lock (about 1 ms)
_ENDED_KEPT: Final = 1024  # attempts whose end was heard here, kept against stale history reads


class TaskSnapshot(Protocol):
    """The tasks in force, read at each scrape (the scheduler implements it).

    ``snapshot`` returns ``{key: (definition, next fire time, interval in seconds)}`` (None: no
    next slot), the tasks of one instant, which no one else changes. It is called from the
    scrape's thread, so it must be safe there, and cheap: a copy of what is already held, not a
    computation per task.
    """

    def snapshot(self) -> Mapping[str, TaskSlot]: ...


class History(Protocol):
    """Where a task's last outcomes and its runs in progress elsewhere come from when it comes
    into the snapshot (the run store implements it). Called from the scrape's thread."""

    def last_outcomes(self, tasks: Collection[str]) -> Mapping[str, LastOutcomes]: ...

    def running(self, task: str | None = None) -> Sequence[RunRecord]: ...


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
    ``collect`` in any thread, any number at a time."""

    def __init__(
        self,
        tasks: TaskSnapshot | None = None,
        *,
        sources: Callable[[], Iterable[SourceLike]] | None = None,
        history: History | None = None,
        owner: str | None = None,
        per_task_histograms: bool = False,
    ) -> None:
        self._tasks = tasks
        self._sources = sources
        self._history = history
        # This process's instance: its own runs are heard from its dispatcher, never read from
        # the history (a slot claimed ahead is recorded running before its work starts).
        self._owner = owner
        # The keys of the snapshot that were looked up in the history; a key that leaves it
        # is forgotten, so that it is looked up again when it comes back. Only scrapes touch
        # it, one at a time (_seeding); the loop never waits for a lookup.
        self._seeded: set[str] = set()
        self._seeding = threading.Lock()
        self.per_task_histograms = per_task_histograms
        self._lock = threading.Lock()
        self._seq = 0  # counts run-state updates (see _prune)
        self._runs: dict[str, TaskRuns] = {}
        # Runs counted from the history, in progress elsewhere: run id -> task. One leaves when
        # it is heard of here (adopted: its end will be heard too) or ends in the history.
        self._foreign: dict[str, str] = {}
        # The attempts whose end was heard here, newest last: a history read from before that
        # end was written (a store that is down keeps ends for later) does not bring them back.
        self._ended: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._problems: frozenset[str] = frozenset()
        self._definition_errors: dict[str, int] = {}
        self._reconciles = {"success": 0, "error": 0}
        self._reconcile_seconds = HistogramValue.empty(RECONCILE_BUCKETS)
        self._run_seconds = HistogramValue.empty(RUN_BUCKETS)
        self._start_delay = HistogramValue.empty(DELAY_BUCKETS)
        self._pruned = 0
        self._last_prune: float | None = None
        self._prune_seconds = HistogramValue.empty(RECONCILE_BUCKETS)
        self._replicas: Replicas | None = None
        self._notifications: dict[tuple[str, str], int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- runs -------------------------------------------------------------------------------

    def on_run(self, record: RunRecord) -> None:
        """The dispatcher's run listener: an attempt started (``running``) or ended, or a slot
        was skipped. Call it from one thread (the event loop). The start delay is observed for
        the first attempt of a scheduled slot only: retries, catch-ups and manual runs are not
        scheduler lag."""
        if record.status is RunStatus.RUNNING:
            delay = None
            if record.trigger is Trigger.SCHEDULE and record.attempt == 1 and record.started_at:
                delay = max((record.started_at - record.scheduled_at).total_seconds(), 0.0)
            self._started(record, delay)
        else:
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
        since = _since(record)
        with self._lock:
            if (record.id, record.attempt) in self._ended:
                return  # a record that arrived after its attempt's end
            self._foreign.pop(record.id, None)  # heard here now: its end will be too
            runs = self._runs.get(record.task) or no_runs(self.per_task_histograms)
            self._set_running(record.task, runs, {**runs.running, record.id: since})
            if delay is not None:
                self._start_delay = self._start_delay.observe(delay)

    def _set_running(self, key: str, runs: TaskRuns, running: Mapping[str, float]) -> None:
        """``runs`` with its attempts in progress replaced by ``running``. Under the lock."""
        self._seq += 1
        self._runs[key] = task_runs(
            key,
            runs.counts,
            running,
            runs.last_success,
            runs.last_failure,
            runs.last_duration,
            runs.durations,
            self._seq,
        )

    def _finished(self, record: RunRecord) -> None:
        seconds = None
        if record.started_at is not None and record.finished_at is not None:
            seconds = max((record.finished_at - record.started_at).total_seconds(), 0.0)
        at = (record.finished_at or record.started_at or record.scheduled_at).timestamp()
        with self._lock:
            self._ended[(record.id, record.attempt)] = None
            if len(self._ended) > _ENDED_KEPT:
                self._ended.popitem(last=False)
            self._foreign.pop(record.id, None)
            runs = self._runs.get(record.task) or no_runs(self.per_task_histograms)
            counts = list(runs.counts)
            counts[_INDEX[record.status]] += 1
            last_success, last_failure = runs.last_success, runs.last_failure
            if record.status is RunStatus.SUCCEEDED:
                last_success = max(at, last_success or at)
            elif is_failure(record):
                last_failure = max(at, last_failure or at)
            last_duration, durations = runs.last_duration, runs.durations
            if seconds is not None:
                last_duration = seconds
                self._run_seconds = self._run_seconds.observe(seconds)
                if durations is not None:
                    durations = durations.observe(seconds)
            self._seq += 1
            self._runs[record.task] = task_runs(
                record.task,
                tuple(counts),
                _without(runs.running, record.id),
                last_success,
                last_failure,
                last_duration,
                durations,
                self._seq,
            )

    # -- passes, retention, sources ---------------------------------------------------------

    def reconciled(self, ok: bool, seconds: float, desired: DesiredState | None = None) -> None:
        """A pass ended. ``desired`` (that of a successful pass) sets the definition errors by
        source kind and which tasks are in state ``Error``; after a failed pass they stay as
        the last successful pass left them. O(errors + conflicts)."""
        errors: dict[str, int] = {}
        flagged: set[str] = set()
        if desired is not None:
            for error in desired.errors:
                errors[error.location.source] = errors.get(error.location.source, 0) + 1
                if error.key:
                    flagged.add(error.key)
            for conflict in desired.conflicts:
                errors[conflict.winner.source] = errors.get(conflict.winner.source, 0) + 1
                flagged.add(conflict.key)
        with self._lock:
            self._reconciles["success" if ok else "error"] += 1
            self._reconcile_seconds = self._reconcile_seconds.observe(max(seconds, 0.0))
            if desired is not None:
                self._definition_errors = errors
                self._problems = frozenset(flagged)

    def pruned(self, deleted: int, seconds: float, finished_at: float) -> None:
        with self._lock:
            self._pruned += deleted
            self._prune_seconds = self._prune_seconds.observe(max(seconds, 0.0))
            self._last_prune = finished_at

    def replicas(self, members: int, disagreeing: bool, fenced: bool = False) -> None:
        """With --ha, after each membership renewal and when the fence goes on or off
        (``fenced``: this replica starts no runs)."""
        with self._lock:
            handovers = self._replicas.handovers if self._replicas else 0
            self._replicas = Replicas(members, handovers, disagreeing, fenced)

    def handed_over(self, moved: int) -> None:
        """``moved`` tasks changed owner at a change of replicas."""
        with self._lock:
            now = self._replicas or Replicas(0, 0, False)
            self._replicas = dataclasses.replace(now, handovers=now.handovers + moved)

    def notification_receivers(self, names: Iterable[str], results: Iterable[str]) -> None:
        """With --notifications: every (receiver, result) counter starts at 0."""
        with self._lock:
            for name in names:
                for result in results:
                    self._notifications.setdefault((name, result), 0)

    def notified(self, receiver: str, result: str) -> None:
        """A notification message ended: ``sent``, ``failed`` or ``dropped``."""
        with self._lock:
            key = (receiver, result)
            self._notifications[key] = self._notifications.get(key, 0) + 1

    # -- scrapes ----------------------------------------------------------------------------

    def scrape(self) -> Scrape:
        """Everything a scrape shows, copied at one instant (next slots and intervals are read
        as the scrape formats them). Run state of tasks that are gone is dropped here (the
        next scrape is the first to notice they are gone)."""
        with self._lock:
            began = self._seq
        tasks = self._tasks.snapshot() if self._tasks is not None else {}
        self._seed(tasks)
        sources = [
            SourceSync(
                s.kind,
                s.revision,
                s.last_sync.timestamp() if s.last_sync else None,
                s.sync_failures,
            )
            for s in (self._sources() if self._sources is not None else ())
        ]
        with self._lock:
            runs = dict(self._runs)
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
                notifications=dict(self._notifications),
            )
        self._prune([key for key, r in runs.items() if key not in tasks and r.seq <= began], began)
        return scrape

    def _seed(self, tasks: Mapping[str, TaskSlot]) -> None:
        """Check the runs in progress elsewhere against the history (``_recheck``), then give
        the tasks new to the snapshot their last success, last failure and last duration, and
        their runs in progress elsewhere, from the history. A history that cannot be read is
        logged and asked again at the next scrape: the scrape itself goes on."""
        if self._history is None:
            return
        with self._seeding:
            self._recheck()
            self._seeded.intersection_update(tasks)
            new = tasks.keys() - self._seeded
            if not new:
                return
            try:
                found = self._history.last_outcomes(new)
                going = [r for r in self._history.running() if r.task in new]
            except Exception as err:
                log.warning(
                    "metrics: cannot read the last outcomes of tasks from the run history,"
                    " nor their runs in progress",
                    extra={"fields": {"tasks": len(new), "error": str(err)[:200]}},
                )
                return
            self._seeded |= new
            self._outcomes(found)
            self._elsewhere(going)

    def _outcomes(self, found: Mapping[str, LastOutcomes]) -> None:
        """Merge last outcomes read from the history: the later of both ends is kept; the
        history's duration replaces the one seen here unless an end seen here is newer."""
        items = list(found.items())
        # A few hundred tasks per hold of the lock: the loop's run listener waits for it.
        for start in range(0, len(items), _SEED_BATCH):
            with self._lock:
                for key, last in items[start : start + _SEED_BATCH]:
                    runs = self._runs.get(key) or no_runs(self.per_task_histograms)
                    seen = max(runs.last_success or 0.0, runs.last_failure or 0.0)
                    stored = max(_at(last.success), _at(last.failure))
                    duration = runs.last_duration
                    if last.duration is not None and (duration is None or stored >= seen):
                        duration = last.duration
                    self._seq += 1
                    self._runs[key] = task_runs(
                        key,
                        runs.counts,
                        runs.running,
                        _later(runs.last_success, last.success),
                        _later(runs.last_failure, last.failure),
                        duration,
                        runs.durations,
                        self._seq,
                    )

    def _elsewhere(self, going: Iterable[RunRecord]) -> None:
        """Count the runs in progress that the history holds of tasks that came here, but
        this process's own (heard from its dispatcher) and those whose end it heard."""
        with self._lock:
            for record in going:
                mine = self._owner is not None and record.owner == self._owner
                if mine or (record.id, record.attempt) in self._ended:
                    continue
                runs = self._runs.get(record.task) or no_runs(self.per_task_histograms)
                if record.id not in runs.running:
                    self._foreign[record.id] = record.task
                    self._set_running(
                        record.task, runs, {**runs.running, record.id: _since(record)}
                    )

    def _recheck(self) -> None:
        """Drop the runs in progress elsewhere that the history no longer says are, and read
        their tasks' last outcomes again: the process that ran them exports no series of a
        task it does not hold, so their ends show here or nowhere. The history is read only
        while there are such runs."""
        assert self._history is not None
        with self._lock:
            foreign = dict(self._foreign)
        if not foreign:
            return
        try:
            going = {record.id for record in self._history.running()}
            ended = {run: key for run, key in foreign.items() if run not in going}
            found = self._history.last_outcomes(set(ended.values())) if ended else {}
        except Exception as err:
            log.warning(
                "metrics: cannot read the runs in progress from the run history",
                extra={"fields": {"error": str(err)[:200]}},
            )
            return
        with self._lock:
            for run, key in ended.items():
                if self._foreign.pop(run, None) is not None:  # not heard of here meanwhile
                    runs = self._runs[key]
                    self._set_running(key, runs, _without(runs.running, run))
        self._outcomes(found)

    def _prune(self, gone: Sequence[str], began: int) -> None:
        """Forget the run state of tasks that the snapshot no longer holds, and their runs in
        progress elsewhere. A task's attempts in progress here keep it (they run here, whoever
        holds the task now: their ends will be heard, and the task may come back), and so does
        a state updated after the snapshot was taken (``seq > began``: a task added since,
        already running)."""
        if not gone:
            return
        with self._lock:
            for key in gone:
                runs = self._runs.get(key)
                if runs is None or runs.seq > began:
                    continue
                here = {run: at for run, at in runs.running.items() if run not in self._foreign}
                for run in runs.running.keys() - here.keys():
                    del self._foreign[run]
                if not here:
                    del self._runs[key]
                elif len(here) < len(runs.running):
                    self._set_running(key, runs, here)

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


def _without(running: Mapping[str, float], run: str) -> Mapping[str, float]:
    """``running`` less ``run`` (a new mapping: a scrape may be reading the old one)."""
    if run not in running:
        return running
    return {key: since for key, since in running.items() if key != run}


def _since(record: RunRecord) -> float:
    return (record.started_at or record.scheduled_at).timestamp()


def _at(stored: datetime | None) -> float:
    return 0.0 if stored is None else stored.timestamp()


def _later(seen: float | None, stored: datetime | None) -> float | None:
    if stored is None:
        return seen
    at = stored.timestamp()
    return at if seen is None else max(seen, at)


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


__all__: Sequence[str] = [
    "History",
    "MemoryTasks",
    "Metrics",
    "SourceLike",
    "TaskSnapshot",
    "accepts_gzip",
]
