"""The metrics' values at one instant (:class:`Scrape`) and their Prometheus text exposition.

Pure formatting: no locks, no clock, no I/O. :func:`exposition` writes the text format 0.0.4
directly, line by line from the snapshot, because prometheus_client's ``generate_latest`` spends
about 6 µs per sample (0.46 s for the 80 000 samples of 10 000 tasks, all of it holding the
GIL that the event loop needs); this writer spends well under 1 µs. What it writes is what
:func:`reconciler.sinks.metrics.Metrics.collect` hands to prometheus_client (it parses this
text), so there is one writer and one set of rules.

The rules of which series exist (the README's "Metrics" section states them for users):

- ``crontask_runs_total`` has a series from 0 for ``succeeded`` and ``failed`` for every task,
  so ``increase()`` sees a task's first success or failure; ``timedOut``, ``skipped`` and
  ``interrupted`` get theirs at their first occurrence (each adds one series to that task).
- A timestamp, duration or interval that is not known has no series, rather than a 0 that a
  ``time() - x`` alert would read as "fifty years ago": last success, last failure and last
  duration appear with the first such run seen by this process; next run and interval are
  absent while the task has no next slot (suspended). ``..._running_since_...`` (when the
  oldest attempt in progress started) exists only while one is: one more series for a
  running task, none for an idle one.
- Histograms have no task label, unless per-task duration histograms were asked for.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Final

from reconciler.core.desired import Definition, SourceKind
from reconciler.core.runs import RunStatus

SOURCE_KINDS: Final = tuple(SourceKind)
TASK_STATES: Final = ("Ready", "Error", "Suspended")
PULLING_KINDS: Final = frozenset({SourceKind.GIT})  # sources whose revision and sync are reported
FINAL_STATUSES: Final = tuple(s for s in RunStatus if s.finished)
EAGER_STATUSES: Final = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED})

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
    seq: int  # the update that made this value (see Metrics._prune)
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


@dataclasses.dataclass(frozen=True, slots=True)
class Replicas:
    members: int  # live replicas as this one sees them
    handovers: int  # tasks that moved between replicas, as this one saw them
    disagreeing: bool  # the live replicas read different definitions


@dataclasses.dataclass(frozen=True, slots=True)
class Family:
    name: str  # as exposed: counters end in _total
    type: str  # counter | gauge | histogram
    help: str

    def header(self) -> str:
        text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.name} {text}\n# TYPE {self.name} {self.type}\n"


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
    "Finished run attempts by task and final status (succeeded and failed from 0, the others "
    "from their first occurrence).",
)
RUN_DURATION = Family(
    "crontask_run_duration_seconds",
    "histogram",
    "Duration of finished run attempts that started.",
)
START_DELAY = Family(
    "crontask_run_start_delay_seconds",
    "histogram",
    "Actual start minus scheduled time of a scheduled run's first attempt.",
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
    "Unix time the task's last failed, timed-out or interrupted attempt finished (no series "
    "before one).",
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

NOTIFICATIONS = Family(
    "crontask_notifications_total",
    "counter",
    "Notification messages by receiver and result: sent, failed (refused, or retries used "
    "up), dropped (the receiver's queue was full).",
)


def escape(value: str) -> str:
    """A label value as the text format quotes it."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


def number(value: float) -> str:
    """A sample value: whole numbers (counts, slots, intervals) without a fraction, others with
    the shortest repr that reads back exactly."""
    if value != value:
        return "NaN"
    if value in (_INF, -_INF):
        return "+Inf" if value > 0 else "-Inf"
    whole = int(value)
    return str(whole) if whole == value else repr(float(value))


_INF = float("inf")


@functools.cache
def _les(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` labels of ``bounds``: as prometheus_client spells them (Go's formatting)
    for every bound below 10^6, which all of crontask's are."""
    return tuple(repr(float(bound)) for bound in bounds)


def task_label(key: str) -> str:
    return f'task="{escape(key)}"'


def task_runs(
    key: str,
    counts: tuple[int, ...],
    running: Mapping[str, float],
    last_success: float | None,
    last_failure: float | None,
    last_duration: float | None,
    durations: HistogramValue | None,
    seq: int,
) -> TaskRuns:
    """A task's run state and its lines (a few µs: runs on the loop, once per record)."""
    label = task_label(key)
    runs = "".join(
        f"{prefix}{label}}} {counts[i]}\n"
        for i, prefix in _STATUS_PREFIXES
        if counts[i] or FINAL_STATUSES[i] in EAGER_STATUSES
    )
    histogram: list[str] = []
    if durations is not None:
        _histogram_lines(histogram.append, RUN_DURATION.name, durations, label)
    return TaskRuns(
        counts,
        running,
        last_success,
        last_failure,
        last_duration,
        durations,
        seq,
        (
            runs,
            f"{RUNNING.name}{{{label}}} {len(running)}\n",
            _gauge_line(LAST_SUCCESS, label, last_success),
            _gauge_line(LAST_FAILURE, label, last_failure),
            _gauge_line(LAST_DURATION, label, last_duration),
            "".join(histogram),
            _gauge_line(RUNNING_SINCE, label, min(running.values()) if running else None),
        ),
    )


def no_runs(per_task_histograms: bool) -> TaskRuns:
    """The run state of a task that never ran, to make its first from: it has no lines (only
    what :func:`task_runs` makes from it is shown), so it costs nothing to ask for."""
    return _NO_RUNS[per_task_histograms]


_NO_RUNS: Final = {
    per_task: TaskRuns(
        (0,) * len(FINAL_STATUSES),
        MappingProxyType({}),
        None,
        None,
        None,
        HistogramValue.empty(RUN_BUCKETS) if per_task else None,
        0,
        (),
    )
    for per_task in (False, True)
}


def new_task_runs(key: str, per_task_histograms: bool) -> TaskRuns:
    """A task that never ran, with its lines (its counters at zero)."""
    none = no_runs(per_task_histograms)
    return task_runs(key, none.counts, none.running, None, None, None, none.durations, 0)


def _gauge_line(family: Family, label: str, value: float | None) -> str:
    return "" if value is None else f"{family.name}{{{label}}} {number(value)}\n"


# Label names in alphabetical order, as prometheus_client writes them.
_STATUS_PREFIXES: Final = tuple(
    (i, f'{RUNS.name}{{status="{s.value}",') for i, s in enumerate(FINAL_STATUSES)
)


def exposition(scrape: Scrape) -> str:
    """The whole text exposition of ``scrape`` (format 0.0.4), families in a fixed order and
    tasks sorted by key.

    It keeps few objects alive for the collector to trace (lists of keys, texts and lines):
    every object a scrape holds on to while it allocates gets traced by the garbage
    collections it triggers, which pause the event loop's thread too, and enough of them
    promoted to the oldest generation set off a full collection (see ``ApsScheduler.snapshot``).
    """
    out: list[str] = []
    write = out.append
    tasks, known = scrape.tasks, scrape.runs
    keys = sorted(tasks)
    # Each task's lines, as its record left them (tasks that never ran: their zeros, now).
    texts = [
        known[key].text if key in known else new_task_runs(key, scrape.per_task_histograms).text
        for key in keys
    ]
    states, next_runs, intervals = _read_tasks(keys, scrape)
    _process(write, scrape, states)
    for family, index in (
        (RUNS, RUNS_TEXT),
        (RUNNING, RUNNING_TEXT),
        (RUNNING_SINCE, SINCE_TEXT),
        (LAST_SUCCESS, SUCCESS_TEXT),
        (LAST_FAILURE, FAILURE_TEXT),
        (LAST_DURATION, DURATION_TEXT),
    ):
        write(family.header())
        out.extend([text[index] for text in texts])
    write(NEXT_RUN.header())
    out.extend(next_runs)
    write(INTERVAL.header())
    out.extend(intervals)
    if scrape.per_task_histograms:
        write(RUN_DURATION.header())
        out.extend([text[HISTOGRAM_TEXT] for text in texts])
    else:
        _histogram(write, RUN_DURATION, scrape.run_seconds)
    _histogram(write, START_DELAY, scrape.start_delay)
    _sources(write, scrape)
    return "".join(out)


Write = Callable[[str], object]


def _read_tasks(
    keys: Sequence[str], scrape: Scrape
) -> tuple[dict[tuple[str, str], int], list[str], list[str]]:
    """Each task's entry, read once (the scheduler's snapshot may make it when it is read):
    the number of tasks by (source kind, state), and the lines of the next run and interval
    gauges, kept aside until their turn as strings, which the collector does not trace."""
    states: dict[tuple[str, str], int] = {}
    next_runs: list[str] = []
    intervals: list[str] = []
    tasks, problems = scrape.tasks, scrape.problems
    next_name, interval_name = NEXT_RUN.name, INTERVAL.name
    for key in keys:
        definition, following, interval = tasks[key]
        if definition.task.spec.suspend:
            state = "Suspended"
        elif definition.error or key in problems:
            state = "Error"
        else:
            state = "Ready"
        pair = (definition.location.source, state)
        states[pair] = states.get(pair, 0) + 1
        label = task_label(key)
        if following is not None:
            next_runs.append(f"{next_name}{{{label}}} {number(following.timestamp())}\n")
        if interval is not None:
            intervals.append(f"{interval_name}{{{label}}} {number(interval)}\n")
    return states, next_runs, intervals


def _process(write: Write, scrape: Scrape, states: Mapping[tuple[str, str], int]) -> None:
    kinds = sorted(set(SOURCE_KINDS) | {kind for kind, _ in states})
    write(TASKS.header())
    for kind in kinds:
        for state in TASK_STATES:
            count = states.get((kind, state), 0)
            write(f'{TASKS.name}{{source="{escape(kind)}",state="{state}"}} {count}\n')
    write(DEFINITION_ERRORS.header())
    for kind in sorted(set(SOURCE_KINDS) | set(scrape.definition_errors)):
        count = scrape.definition_errors.get(kind, 0)
        write(f'{DEFINITION_ERRORS.name}{{source="{escape(kind)}"}} {count}\n')
    write(RECONCILES.header())
    for result in ("success", "error"):
        write(f'{RECONCILES.name}{{result="{result}"}} {scrape.reconciles.get(result, 0)}\n')
    _histogram(write, RECONCILE_DURATION, scrape.reconcile_seconds)


def _histogram(write: Write, family: Family, value: HistogramValue) -> None:
    write(family.header())
    _histogram_lines(write, family.name, value, "")


def _histogram_lines(write: Write, name: str, value: HistogramValue, label: str) -> None:
    """The lines of one histogram; ``label``: its task label, or "" for none."""
    cumulative = 0
    after = f",{label}}}" if label else "}"
    for le, count in zip(_les(value.bounds), value.counts, strict=False):
        cumulative += count
        write(f'{name}_bucket{{le="{le}"{after} {cumulative}\n')
    cumulative += value.counts[-1]
    write(f'{name}_bucket{{le="+Inf"{after} {cumulative}\n')
    braces = f"{{{label}}}" if label else ""
    write(f"{name}_count{braces} {cumulative}\n")
    write(f"{name}_sum{braces} {number(value.total)}\n")


def _sources(write: Write, scrape: Scrape) -> None:
    pulling = [s for s in scrape.sources if s.kind in PULLING_KINDS]
    if pulling:
        write(SOURCE_INFO.header())
        for source in pulling:
            labels = f'revision="{escape(source.revision or "")}",source="{escape(source.kind)}"'
            write(f"{SOURCE_INFO.name}{{{labels}}} 1\n")
        write(SOURCE_LAST_SYNC.header())
        for source in pulling:
            if source.last_sync is not None:
                label = f'source="{escape(source.kind)}"'
                write(f"{SOURCE_LAST_SYNC.name}{{{label}}} {number(source.last_sync)}\n")
    errors = {s.kind: s.failures for s in pulling}
    if errors:
        write(SOURCE_SYNC_ERRORS.header())
        for kind, count in sorted(errors.items()):
            write(f'{SOURCE_SYNC_ERRORS.name}{{source="{escape(kind)}"}} {count}\n')
    write(HISTORY_PRUNED.header())
    write(f"{HISTORY_PRUNED.name} {scrape.pruned_records}\n")
    write(HISTORY_LAST_PRUNE.header())
    if scrape.last_prune is not None:
        write(f"{HISTORY_LAST_PRUNE.name} {number(scrape.last_prune)}\n")
    _histogram(write, HISTORY_PRUNE_DURATION, scrape.prune_seconds)
    _replicas(write, scrape)
    if scrape.notifications:
        write(NOTIFICATIONS.header())
        for (receiver, result), count in sorted(scrape.notifications.items()):
            labels = f'receiver="{escape(receiver)}",result="{escape(result)}"'
            write(f"{NOTIFICATIONS.name}{{{labels}}} {count}\n")


def _replicas(write: Write, scrape: Scrape) -> None:
    replicas = scrape.replicas
    if replicas is None:
        return
    write(MEMBERS.header() + f"{MEMBERS.name} {replicas.members}\n")
    write(OWNED_TASKS.header() + f"{OWNED_TASKS.name} {len(scrape.tasks)}\n")
    write(HANDOVERS.header() + f"{HANDOVERS.name} {replicas.handovers}\n")
    disagreeing = int(replicas.disagreeing)
    write(MEMBERS_DISAGREEING.header() + f"{MEMBERS_DISAGREEING.name} {disagreeing}\n")
