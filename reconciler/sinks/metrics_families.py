"""What the metrics are: their families (name, type, help), histogram buckets, and the values
one scrape shows (:class:`Scrape`). Plain data, no behaviour beyond a histogram's ``observe``;
``metrics_exposition`` writes them as text, ``metrics`` keeps them current."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from reconciler.core.desired import Definition, SourceKind
from reconciler.core.runs import RunStatus

SOURCE_KINDS: Final = tuple(SourceKind)
TASK_STATES: Final = ("Ready", "Error", "Suspended")
PULLING_KINDS: Final = frozenset({SourceKind.GIT})  # sources whose revision and sync are reported
FINAL_STATUSES: Final = tuple(s for s in RunStatus if s.finished)
# The statuses whose counter exists from 0 for every task, so that increase() sees a task's
# first one (a series that appears at 1 has no 0 before it: its first increase is lost), as
# the dashboard's failures in 24 h must. Skipped, no failure and read by no rule or per-task
# panel, gets its series at its first occurrence: one series fewer for a task that never skips.
EAGER_STATUSES: Final = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED}
)

RECONCILE_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RUN_BUCKETS: Final = (0.1, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
DELAY_BUCKETS: Final = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# (definition, next fire time, interval in seconds): what the scheduler holds of a task.
TaskSlot = tuple[Definition, datetime | None, float | None]


@dataclasses.dataclass(frozen=True, slots=True)
class HistogramValue:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket, not cumulative; one more than bounds (+Inf)
    total: float = 0.0

    @classmethod
    def empty(cls, bounds: Sequence[float]) -> HistogramValue:
        return cls(tuple(bounds), (0,) * (len(bounds) + 1))

    def observe(self, value: float) -> HistogramValue:
        index = len(self.bounds)
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                index = i
                break
        counts = list(self.counts)
        counts[index] += 1
        return HistogramValue(self.bounds, tuple(counts), self.total + value)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskRuns:
    """One task's runs as this process has seen them; replaced whole on every record (see
    :func:`task_runs`), with its lines of the exposition already written: a record is rendered
    once, on arrival, rather than at every scrape."""

    counts: tuple[int, ...]  # finished attempts by FINAL_STATUSES index
    running: Mapping[str, float]  # attempts in progress: run id -> when it started (Unix time)
    last_success: float | None
    last_failure: float | None
    last_duration: float | None
    durations: HistogramValue | None  # with per-task histograms only
    seq: int  # the update that made this value (see metrics_runs.RunState.prune)
    text: tuple[str, ...]  # this task's lines of each family, by the *_TEXT indices below


RUNS_TEXT, RUNNING_TEXT, SUCCESS_TEXT, FAILURE_TEXT, DURATION_TEXT, HISTOGRAM_TEXT, SINCE_TEXT = (
    range(7)
)


@dataclasses.dataclass(frozen=True, slots=True)
class SourceSync:
    kind: str
    revision: str | None
    last_sync: float | None
    failures: int = 0  # failed syncs since the start


@dataclasses.dataclass(frozen=True, slots=True)
class Scrape:
    """Everything one scrape shows, copied at one instant; ``tasks`` may read each task's next
    slot and interval when its entry is read (see ``ApsScheduler.snapshot``)."""

    tasks: Mapping[str, TaskSlot]
    runs: Mapping[str, TaskRuns]
    problems: frozenset[str]  # keys with a definition error or conflict, as of the last pass
    definition_errors: Mapping[str, int]
    reconciles: Mapping[str, int]  # by result
    reconcile_seconds: HistogramValue
    run_seconds: HistogramValue
    start_delay: HistogramValue
    per_task_histograms: bool
    sources: Sequence[SourceSync]
    pruned_records: int
    last_prune: float | None
    prune_seconds: HistogramValue
    replicas: Replicas | None = None  # with --ha
    # With --notifications: (receiver, result) -> messages; every pair from 0.
    notifications: Mapping[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    # With --notifications: receiver -> messages waiting in its queue; every receiver from 0.
    notifications_queued: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # Each task's slot before its latest one (Unix time; ``metrics_slots``), by key.
    slots_before_last: Mapping[str, float] = dataclasses.field(default_factory=dict)
    # Without --ha, with --kubernetes: another crontask seen running (membership.single);
    # None: not checked.
    single_lease_conflict: bool | None = None
    # The run store as this process sees it (``RunStoreState``); None: not known here.
    run_store: RunStoreState | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RunStoreState:
    """The run store as this process sees it, read at each scrape without asking the store."""

    up: bool | None  # its readiness check's last answer; None: none has come yet
    pending: int  # run records waiting in memory to be written to it
    dropped: int  # run records given up on since the start (buffer full, refused for good)


@dataclasses.dataclass(frozen=True, slots=True)
class Replicas:
    members: int  # live replicas as this one sees them
    handovers: int  # tasks that moved between replicas, as this one saw them
    disagreeing: bool  # the live replicas read different definitions
    fenced: bool = False  # this replica starts no runs: not renewed within the renew deadline
    # Seconds its clock is ahead of the database's (membership.clock); None: not estimated.
    clock_offset: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Family:
    name: str  # as exposed: counters end in _total
    type: str  # counter | gauge | histogram
    help: str

    def header(self) -> str:
        text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.name} {text}\n# TYPE {self.name} {self.type}\n"


BUILD_INFO = Family(
    "crontask_build_info",
    "gauge",
    "1, labelled with the crontask version and the Python version this process runs (tells "
    "the replicas of a rolling update apart).",
)
TASKS = Family(
    "crontask_tasks",
    "gauge",
    "Tasks by source kind and state (Error: a definition problem; its last good definition runs).",
)
DEFINITION_ERRORS = Family(
    "crontask_definition_errors",
    "gauge",
    "Definition problems (parse, validation, conflicts) by source kind, last pass.",
)
RECONCILES = Family("crontask_reconcile_total", "counter", "Reconcile passes by result.")
RECONCILE_DURATION = Family(
    "crontask_reconcile_duration_seconds", "histogram", "Duration of a reconcile pass."
)
RUNS = Family(
    "crontask_runs_total",
    "counter",
    "Finished run attempts by task and final status (succeeded, failed, timedOut and "
    "interrupted from 0, skipped from its first occurrence).",
)
RUN_DURATION = Family(
    "crontask_run_duration_seconds",
    "histogram",
    "Duration of finished run attempts that started.",
)
START_DELAY = Family(
    "crontask_run_start_delay_seconds",
    "histogram",
    "Actual start minus scheduled time of a scheduled run's first attempt (under Replace, minus"
    " the end of the run it replaced where that is later).",
)
RUNNING = Family("crontask_running_runs", "gauge", "Run attempts in progress, by task.")
RUNNING_SINCE = Family(
    "crontask_task_running_since_timestamp_seconds",
    "gauge",
    "Unix time the task's oldest attempt in progress started (no series while none is).",
)
LAST_SUCCESS = Family(
    "crontask_task_last_success_timestamp_seconds",
    "gauge",
    "Unix time the task's last successful attempt finished (no series before one).",
)
LAST_FAILURE = Family(
    "crontask_task_last_failure_timestamp_seconds",
    "gauge",
    "Unix time the task's last run that ended failed, timed out or interrupted finished: a "
    "retried attempt counts only if its retry does not come (no series before one).",
)
LAST_DURATION = Family(
    "crontask_task_last_run_duration_seconds",
    "gauge",
    "Duration of the task's last finished attempt that started (no series before one).",
)
NEXT_RUN = Family(
    "crontask_task_next_run_timestamp_seconds",
    "gauge",
    "Unix time of the task's next slot (no series while it has none, e.g. suspended).",
)
INTERVAL = Family(
    "crontask_task_schedule_interval_seconds",
    "gauge",
    "Seconds from the task's latest slot to its next (before its first: from the next to the "
    "one after); no series without a next slot.",
)
SLOT_BEFORE_LAST = Family(
    "crontask_task_slot_before_last_timestamp_seconds",
    "gauge",
    "Unix time of the task's slot before its latest one (the latest: the last slot before its "
    "next); no series without a next slot.",
)
SOURCE_INFO = Family(
    "crontask_source_info",
    "gauge",
    "1 for each pulling source and the revision in force (git: the commit SHA).",
)
SOURCE_LAST_SYNC = Family(
    "crontask_source_last_sync_timestamp_seconds",
    "gauge",
    "Unix time of the source's last successful sync (no series before one).",
)
SOURCE_SYNC_ERRORS = Family(
    "crontask_source_sync_errors_total", "counter", "Failed syncs (fetch, checkout) by source."
)
HISTORY_PRUNED = Family(
    "crontask_history_pruned_records_total",
    "counter",
    "Run records deleted by retention (history limits, --history-max-age).",
)
HISTORY_LAST_PRUNE = Family(
    "crontask_history_last_prune_timestamp_seconds",
    "gauge",
    "Unix time retention last completed (no series before it has).",
)
HISTORY_PRUNE_DURATION = Family(
    "crontask_history_prune_duration_seconds", "histogram", "Duration of a retention pass."
)
MEMBERS = Family("crontask_members", "gauge", "Live replicas (--ha) as this replica sees them.")
OWNED_TASKS = Family(
    "crontask_owned_tasks", "gauge", "Tasks this replica schedules (--ha: its share of them)."
)
HANDOVERS = Family(
    "crontask_handovers_total",
    "counter",
    "Tasks that moved between replicas (--ha), counted by this replica at each change.",
)
MEMBERS_DISAGREEING = Family(
    "crontask_members_disagreeing",
    "gauge",
    "1 while the live replicas (--ha) read different definitions (see GET /api/v1/members).",
)
REPLICA_FENCED = Family(
    "crontask_replica_fenced",
    "gauge",
    "1 while this replica (--ha) starts no runs: its membership was not renewed within the "
    "renew deadline (the log says why); 0 once a renewal works again.",
)
CLOCK_OFFSET = Family(
    "crontask_clock_offset_seconds",
    "gauge",
    "How far this replica's clock (--ha) is ahead of PostgreSQL's (negative: behind), as the "
    "last membership renewal estimated it, to within half its round trip: not renewed while "
    "crontask_replica_fenced is 1. Replicas time slots by their own clocks: keep them in sync "
    "(NTP).",
)
SINGLE_LEASE_CONFLICT = Family(
    "crontask_single_lease_conflict",
    "gauge",
    "1 while another crontask without --ha is seen running the same CronTasks (the Lease "
    "crontask-single, --kubernetes without --ha): every slot runs once in each.",
)

RUN_STORE_UP = Family(
    "crontask_run_store_up",
    "gauge",
    "1 while the run store answers the readiness check (as /readyz: its last answer, asked "
    "again at most once a second; a scrape never waits for it), 0 while it fails or has not "
    "answered within 2 s (no series before a first answer).",
)
RUN_RECORDS_PENDING = Family(
    "crontask_run_records_pending",
    "gauge",
    "Run records waiting in memory for the run store (an outage, or a record it refused): "
    "lost if crontask stops or dies before they are written; past 10 000 the oldest is "
    "dropped (crontask_run_records_dropped_total).",
)
RUN_RECORDS_DROPPED = Family(
    "crontask_run_records_dropped_total",
    "counter",
    "Run records given up on without being written: the oldest waiting when 10 000 wait, or "
    "one the run store refused three times for a reason other than an outage.",
)

NOTIFICATIONS = Family(
    "crontask_notifications_total",
    "counter",
    "Notification messages by receiver and result: sent, failed (refused, or retries used "
    "up), dropped (the receiver's queue was full, or crontask stopped before it was sent).",
)
NOTIFICATIONS_QUEUED = Family(
    "crontask_notifications_queued",
    "gauge",
    "Notification messages waiting in each receiver's queue, not counting the one being "
    "delivered (at most 1 000: beyond that one is dropped, result dropped of "
    "crontask_notifications_total).",
)
