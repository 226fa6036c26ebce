"""The Prometheus text exposition of one :class:`Scrape` (``metrics_families`` says what is in it).

Pure formatting: no locks, no clock, no I/O. :func:`exposition` writes the text format 0.0.4
directly, line by line from the snapshot, because prometheus_client's ``generate_latest`` spends
about 6 µs per sample (0.46 s for the 80 000 samples of 10 000 tasks, all of it holding the
GIL that the event loop needs); this writer spends well under 1 µs. What it writes is what
:func:`reconciler.sinks.metrics.Metrics.collect` hands to prometheus_client (it parses this
text), so there is one writer and one set of rules.

The rules of which series exist (the README's "Metrics" section states them for users):

- ``crontask_runs_total`` has a series from 0 for ``succeeded``, ``failed``, ``timedOut`` and
  ``interrupted`` for every task, so ``increase()`` sees a task's first success or failure of
  any kind (a series born at 1 has no 0 before it: the dashboard's failures in 24 h would miss
  a task's first timeout); ``skipped``, no failure, gets its series at its first occurrence
  (one more series for that task).
- A timestamp, duration or interval that is not known has no series, rather than a 0 that a
  ``time() - x`` alert would read as "fifty years ago": last success, last failure and last
  duration appear with the first such run seen by this process; next run, interval and slot
  before last are absent while the task has no next slot (suspended).
  ``..._running_since_...`` (when the oldest attempt in progress started) exists only while
  one is: one more series for a running task, none for an idle one.
- Histograms have no task label, unless per-task duration histograms were asked for.
- ``crontask_run_store_up`` has no series before the store's first answer to the readiness
  check; ``crontask_run_records_pending`` and ``crontask_run_records_dropped_total`` are there
  from 0 (so ``increase()`` sees the first record dropped), in a process that records runs.
- ``crontask_build_info`` is always there, first: one series at 1 whose ``version`` and
  ``python`` labels say what this process runs (replicas of a rolling update differ in it).
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Final

from reconciler import __version__
from reconciler.sinks.metrics_families import (
    BUILD_INFO,
    CLOCK_OFFSET,
    DEFINITION_ERRORS,
    DURATION_TEXT,
    EAGER_STATUSES,
    FAILURE_TEXT,
    FINAL_STATUSES,
    HANDOVERS,
    HISTOGRAM_TEXT,
    HISTORY_LAST_PRUNE,
    HISTORY_PRUNE_DURATION,
    HISTORY_PRUNED,
    INTERVAL,
    LAST_DURATION,
    LAST_FAILURE,
    LAST_SUCCESS,
    MEMBERS,
    MEMBERS_DISAGREEING,
    NEXT_RUN,
    NOTIFICATIONS,
    NOTIFICATIONS_QUEUED,
    OWNED_TASKS,
    PULLING_KINDS,
    RECONCILE_DURATION,
    RECONCILES,
    REPLICA_FENCED,
    RUN_BUCKETS,
    RUN_DURATION,
    RUN_RECORDS_DROPPED,
    RUN_RECORDS_PENDING,
    RUN_STORE_UP,
    RUNNING,
    RUNNING_SINCE,
    RUNNING_TEXT,
    RUNS,
    RUNS_TEXT,
    SINCE_TEXT,
    SINGLE_LEASE_CONFLICT,
    SLOT_BEFORE_LAST,
    SOURCE_INFO,
    SOURCE_KINDS,
    SOURCE_LAST_SYNC,
    SOURCE_SYNC_ERRORS,
    START_DELAY,
    SUCCESS_TEXT,
    TASK_STATES,
    TASKS,
    Family,
    HistogramValue,
    RunStoreState,
    Scrape,
    TaskRuns,
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
    write(SLOT_BEFORE_LAST.header())
    before, name = scrape.slots_before_last, SLOT_BEFORE_LAST.name
    out.extend(
        [f"{name}{{{task_label(key)}}} {number(before[key])}\n" for key in keys if key in before]
    )
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


# The same for the life of the process, so written once. Labels in alphabetical order.
_BUILD_INFO_TEXT: Final = BUILD_INFO.header() + (
    f'{BUILD_INFO.name}{{python="{escape(platform.python_version())}",'
    f'version="{escape(__version__)}"}} 1\n'
)


def _process(write: Write, scrape: Scrape, states: Mapping[tuple[str, str], int]) -> None:
    write(_BUILD_INFO_TEXT)
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
    if scrape.run_store is not None:
        _run_store(write, scrape.run_store)


def _run_store(write: Write, store: RunStoreState) -> None:
    # Pending and dropped from 0: increase() sees the first record dropped.
    if store.up is not None:
        write(RUN_STORE_UP.header() + f"{RUN_STORE_UP.name} {int(store.up)}\n")
    write(RUN_RECORDS_PENDING.header() + f"{RUN_RECORDS_PENDING.name} {store.pending}\n")
    write(RUN_RECORDS_DROPPED.header() + f"{RUN_RECORDS_DROPPED.name} {store.dropped}\n")


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
    if scrape.single_lease_conflict is not None:
        conflict = int(scrape.single_lease_conflict)
        write(SINGLE_LEASE_CONFLICT.header() + f"{SINGLE_LEASE_CONFLICT.name} {conflict}\n")
    if scrape.notifications:
        write(NOTIFICATIONS.header())
        for (receiver, result), count in sorted(scrape.notifications.items()):
            labels = f'receiver="{escape(receiver)}",result="{escape(result)}"'
            write(f"{NOTIFICATIONS.name}{{{labels}}} {count}\n")
    if scrape.notifications_queued:
        write(NOTIFICATIONS_QUEUED.header())
        for receiver, count in sorted(scrape.notifications_queued.items()):
            write(f'{NOTIFICATIONS_QUEUED.name}{{receiver="{escape(receiver)}"}} {count}\n')


def _replicas(write: Write, scrape: Scrape) -> None:
    replicas = scrape.replicas
    if replicas is None:
        return
    write(MEMBERS.header() + f"{MEMBERS.name} {replicas.members}\n")
    write(OWNED_TASKS.header() + f"{OWNED_TASKS.name} {len(scrape.tasks)}\n")
    write(HANDOVERS.header() + f"{HANDOVERS.name} {replicas.handovers}\n")
    disagreeing = int(replicas.disagreeing)
    write(MEMBERS_DISAGREEING.header() + f"{MEMBERS_DISAGREEING.name} {disagreeing}\n")
    # Its own gauge: a replica that starts no runs keeps its other gauges' last values.
    write(REPLICA_FENCED.header() + f"{REPLICA_FENCED.name} {int(replicas.fenced)}\n")
    if replicas.clock_offset is not None:  # none on Kubernetes Leases, or before an estimate
        offset = number(replicas.clock_offset)
        write(CLOCK_OFFSET.header() + f"{CLOCK_OFFSET.name} {offset}\n")
