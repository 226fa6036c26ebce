"""Prometheus metrics of the reconciler and its runs.

Each :class:`Metrics` owns a private ``CollectorRegistry`` (never the process-global one), so
tests and several instances in one process do not collide. The controller reports events
through the methods below; ``/metrics`` serves :meth:`Metrics.render`.

Every label set a dashboard may plot is created up front with a zero value (each source kind x
state, each task x final status), so a graph shows a flat zero rather than a gap, and the series
of a task that no longer exists are removed rather than left frozen at their last value.

This is an adapter: it knows the core's run records and nothing of the controller or the API.
:meth:`Metrics.set_tasks` takes anything shaped like the controller's ``TaskView``
(:class:`TaskLike`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from reconciler.core.runs import RunRecord, RunStatus, Trigger

SOURCE_KINDS: Final = ("file", "git", "kubernetes", "api")
TASK_STATES: Final = ("Ready", "Error", "Suspended")
FINAL_STATUSES: Final = tuple(s for s in RunStatus if s.finished)

RECONCILE_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RUN_BUCKETS: Final = (0.1, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
DELAY_BUCKETS: Final = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class SourceLike(Protocol):
    @property
    def kind(self) -> str: ...


class TaskLike(Protocol):
    """What :meth:`Metrics.set_tasks` reads of a task (``TaskView`` has all of it)."""

    @property
    def key(self) -> str: ...
    @property
    def source(self) -> SourceLike: ...
    @property
    def state(self) -> str: ...
    @property
    def running(self) -> tuple[str, ...]: ...
    @property
    def next_runs(self) -> tuple[datetime, ...]: ...
    @property
    def last_run(self) -> RunRecord | None: ...


class Metrics:
    """The reconciler's metrics. Thread-safe: call from the loop or from worker threads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks = Gauge(
            "crontask_tasks", "Tasks by source kind and state.", ["source", "state"], registry=r
        )
        self.definition_errors = Gauge(
            "crontask_definition_errors",
            "Definition problems (parse, validation, conflicts) by source kind, last pass.",
            ["source"],
            registry=r,
        )
        self.reconcile_total = Counter(
            "crontask_reconcile", "Reconcile passes by result.", ["result"], registry=r
        )
        self.reconcile_duration = Histogram(
            "crontask_reconcile_duration_seconds",
            "Duration of a reconcile pass.",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.runs_total = Counter(
            "crontask_runs",
            "Finished runs by task and final status.",
            ["task", "status"],
            registry=r,
        )
        self.run_duration = Histogram(
            "crontask_run_duration_seconds",
            "Duration of finished run attempts that started.",
            ["task"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.start_delay = Histogram(
            "crontask_run_start_delay_seconds",
            "Actual start minus scheduled time of a scheduled run's first attempt.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "crontask_task_last_success_timestamp_seconds",
            "Unix time the task's last successful run finished (0: none known).",
            ["task"],
            registry=r,
        )
        self.next_run = Gauge(
            "crontask_task_next_run_timestamp_seconds",
            "Unix time of the task's next slot (0: none, e.g. suspended).",
            ["task"],
            registry=r,
        )
        self.running_runs = Gauge(
            "crontask_running_runs", "Runs in progress by task.", ["task"], registry=r
        )
        self.source_info = Gauge(
            "crontask_source_info",
            "1 for each source and the revision in force (git: the commit SHA).",
            ["source", "revision"],
            registry=r,
        )
        self.source_last_sync = Gauge(
            "crontask_source_last_sync_timestamp_seconds",
            "Unix time of the source's last successful sync (0: none yet).",
            ["source"],
            registry=r,
        )
        self.source_sync_errors = Counter(
            "crontask_source_sync_errors",
            "Failed syncs (fetch, checkout) by source.",
            ["source"],
            registry=r,
        )
        self.history_pruned = Counter(
            "crontask_history_pruned_records",
            "Run records deleted by retention (history limits, --history-max-age).",
            registry=r,
        )
        self.history_last_prune = Gauge(
            "crontask_history_last_prune_timestamp_seconds",
            "Unix time retention last completed (0: not yet).",
            registry=r,
        )
        self.history_prune_duration = Histogram(
            "crontask_history_prune_duration_seconds",
            "Duration of a retention pass.",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._running: dict[str, set[str]] = {}
        self._last_success: dict[str, float] = {}
        self._kinds: set[str] = set(SOURCE_KINDS)
        for result in ("success", "error"):
            self.reconcile_total.labels(result=result)
        for kind in SOURCE_KINDS:
            self.definition_errors.labels(source=kind).set(0)
            for state in TASK_STATES:
                self.tasks.labels(source=kind, state=state).set(0)

    # -- task state -------------------------------------------------------------------------

    def set_tasks(self, views: Iterable[TaskLike]) -> None:
        """The current tasks: sets the per-state counts and the per-task gauges, creates the
        series of new tasks and removes those of tasks that are gone. Idempotent."""
        views = list(views)
        counts: dict[tuple[str, str], int] = {}
        for v in views:
            counts[(v.source.kind, v.state)] = counts.get((v.source.kind, v.state), 0) + 1
        with self._lock:
            self._kinds.update(kind for kind, _ in counts)
            for kind in self._kinds:
                for state in TASK_STATES:
                    self.tasks.labels(source=kind, state=state).set(counts.get((kind, state), 0))
            current = {v.key for v in views}
            for gone in self._known - current:
                self._forget(gone)
            for v in views:
                if v.key not in self._known:
                    self._add(v.key)
                self._running[v.key] = set(v.running)
                self.running_runs.labels(task=v.key).set(len(v.running))
                self.next_run.labels(task=v.key).set(
                    v.next_runs[0].timestamp() if v.next_runs else 0
                )
                last = v.last_run
                if last is not None and last.status is RunStatus.SUCCEEDED:
                    self._succeeded(last)

    def _add(self, task: str) -> None:
        self._known.add(task)
        for status in FINAL_STATUSES:
            self.runs_total.labels(task=task, status=status.value)
        self.run_duration.labels(task=task)
        self.last_success.labels(task=task).set(self._last_success.get(task, 0))
        self.next_run.labels(task=task).set(0)
        self.running_runs.labels(task=task).set(0)

    def _forget(self, task: str) -> None:
        self._known.discard(task)
        self._running.pop(task, None)
        self._last_success.pop(task, None)
        for status in FINAL_STATUSES:
            _remove(self.runs_total, task, status.value)
        for metric in (self.run_duration, self.last_success, self.next_run, self.running_runs):
            _remove(metric, task)

    # -- sources ----------------------------------------------------------------------------

    def set_sources(self, sources: Iterable[SourceLike]) -> None:
        """Revision and last sync of each pulling source (git); called at every scrape."""
        with self._lock:
            self.source_info.clear()
            for source in sources:
                revision = getattr(source, "revision", None)
                if source.kind not in ("git",):
                    continue
                self.source_info.labels(source=source.kind, revision=revision or "").set(1)
                self.source_sync_errors.labels(source=source.kind)
                last = getattr(source, "last_sync", None)
                self.source_last_sync.labels(source=source.kind).set(
                    last.timestamp() if last is not None else 0
                )

    def pruned(self, deleted: int, seconds: float, finished_at: float) -> None:
        self.history_pruned.inc(deleted)
        self.history_prune_duration.observe(seconds)
        self.history_last_prune.set(finished_at)

    def source_sync_failed(self, kind: str) -> None:
        self.source_sync_errors.labels(source=kind).inc()

    # -- reconcile passes -------------------------------------------------------------------

    def reconciled(self, ok: bool, seconds: float, errors_by_source: Mapping[str, int]) -> None:
        """One reconcile pass finished; ``errors_by_source``: definition errors per source kind
        (kinds not named are set to 0)."""
        self.reconcile_total.labels(result="success" if ok else "error").inc()
        self.reconcile_duration.observe(max(seconds, 0.0))
        with self._lock:
            kinds = set(SOURCE_KINDS) | set(errors_by_source)
            for kind in kinds:
                self.definition_errors.labels(source=kind).set(errors_by_source.get(kind, 0))

    # -- runs -------------------------------------------------------------------------------

    def run_started(self, record: RunRecord) -> None:
        """An attempt started (its process is running). Observes the start delay of the first
        attempt of a scheduled slot; retries, catch-ups and manual runs are not scheduler lag."""
        with self._lock:
            if record.task not in self._known:
                self._add(record.task)
            running = self._running.setdefault(record.task, set())
            running.add(record.id)
            self.running_runs.labels(task=record.task).set(len(running))
        if (
            record.trigger is Trigger.SCHEDULE
            and record.attempt == 1
            and record.started_at is not None
        ):
            delay = (record.started_at - record.scheduled_at).total_seconds()
            self.start_delay.observe(max(delay, 0.0))

    def run_finished(self, record: RunRecord) -> None:
        """An attempt finished - including a slot skipped without starting (``skipped``)."""
        if not record.status.finished:
            return
        with self._lock:
            if record.task not in self._known:
                self._add(record.task)
            self.runs_total.labels(task=record.task, status=record.status.value).inc()
            running = self._running.setdefault(record.task, set())
            running.discard(record.id)
            self.running_runs.labels(task=record.task).set(len(running))
            if record.started_at is not None and record.finished_at is not None:
                seconds = (record.finished_at - record.started_at).total_seconds()
                self.run_duration.labels(task=record.task).observe(max(seconds, 0.0))
            if record.status is RunStatus.SUCCEEDED:
                self._succeeded(record)

    def _succeeded(self, record: RunRecord) -> None:
        at = (record.finished_at or record.started_at or record.scheduled_at).timestamp()
        if at > self._last_success.get(record.task, 0):
            self._last_success[record.task] = at
            self.last_success.labels(task=record.task).set(at)

    # -- exposition -------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition (format 0.0.4) and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never created
        metric.remove(*labels)


__all__: Sequence[str] = ["Metrics", "SourceLike", "TaskLike"]
