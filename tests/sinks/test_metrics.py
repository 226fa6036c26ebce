"""``reconciler.sinks.metrics`` over its in-memory task snapshot: which series exist, what a task
costs, the per-task histogram flag, concurrent scrapes, removal."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from reconciler.core.desired import Conflict, DefinitionError, DesiredState, Location
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.sinks.metrics import MemoryTasks, Metrics, accepts_gzip
from reconciler.sinks.metrics_families import (
    DELAY_BUCKETS,
    RECONCILE_BUCKETS,
    RUN_BUCKETS,
    TaskSlot,
)
from tests.helpers import definition

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
NEXT = T0 + timedelta(minutes=1)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Every series of one task that has succeeded once and failed once, by default: eleven.
STEADY = {
    ("crontask_runs_total", "succeeded"),
    ("crontask_runs_total", "failed"),
    ("crontask_runs_total", "timedOut"),
    ("crontask_runs_total", "interrupted"),
    ("crontask_running_runs", None),
    ("crontask_task_next_run_timestamp_seconds", None),
    ("crontask_task_schedule_interval_seconds", None),
    ("crontask_task_slot_before_last_timestamp_seconds", None),
    ("crontask_task_last_success_timestamp_seconds", None),
    ("crontask_task_last_failure_timestamp_seconds", None),
    ("crontask_task_last_run_duration_seconds", None),
}


def samples(metrics: Metrics) -> Samples:
    body, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def of_task(found: Samples, task: str) -> set[tuple[str, str | None]]:
    """The series of ``task``: (name, status label or None)."""
    series = set()
    for name, labels in found:
        as_dict = dict(labels)
        if as_dict.get("task") == task:
            series.add((name, as_dict.get("status")))
    return series


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def attempt(
    task: str,
    status: RunStatus,
    *,
    at: datetime = T0,
    attempt: int = 1,
    took: float = 2.0,
    late: float = 0.5,
    trigger: Trigger = Trigger.SCHEDULE,
) -> tuple[RunRecord, RunRecord]:
    """The ``running`` record of an attempt and its final one."""
    started = RunRecord(
        id=run_id(task, at),
        task=task,
        scheduled_at=at,
        trigger=trigger,
        status=RunStatus.RUNNING,
        attempt=attempt,
        started_at=at + timedelta(seconds=late),
    )
    return started, started.finish(status, finished_at=at + timedelta(seconds=late + took))


def run(metrics: Metrics, task: str, status: RunStatus, **kwargs: object) -> RunRecord:
    started, final = attempt(task, status, **kwargs)  # type: ignore[arg-type]
    metrics.on_run(started)
    metrics.on_run(final)
    return final


def skipped(task: str, at: datetime) -> RunRecord:
    return RunRecord(
        id=run_id(task, at),
        task=task,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SKIPPED,
        finished_at=at,
        reason="ConcurrencyForbid",
    )


@pytest.fixture
def tasks() -> MemoryTasks:
    found = MemoryTasks()
    found.set(definition("a"), NEXT, 60.0)
    return found


def test_a_new_task_has_eight_series(tasks: MemoryTasks) -> None:
    found = samples(Metrics(tasks))
    assert of_task(found, "default/a") == {
        ("crontask_runs_total", "succeeded"),
        ("crontask_runs_total", "failed"),
        ("crontask_runs_total", "timedOut"),
        ("crontask_runs_total", "interrupted"),
        ("crontask_running_runs", None),
        ("crontask_task_next_run_timestamp_seconds", None),
        ("crontask_task_schedule_interval_seconds", None),
        ("crontask_task_slot_before_last_timestamp_seconds", None),
    }
    task = ("task", "default/a")
    for status in ("failed", "timedOut", "interrupted"):  # increase() sees the first of each
        assert found[("crontask_runs_total", frozenset({task, ("status", status)}))] == 0
    assert found[("crontask_running_runs", frozenset({task}))] == 0
    assert found[("crontask_task_next_run_timestamp_seconds", frozenset({task}))] == (
        NEXT.timestamp()
    )
    assert found[("crontask_task_schedule_interval_seconds", frozenset({task}))] == 60
    # every minute: its latest slot is a minute before the next, the one before that two
    assert found[("crontask_task_slot_before_last_timestamp_seconds", frozenset({task}))] == (
        (NEXT - timedelta(minutes=2)).timestamp()
    )


def test_a_task_in_steady_state_has_eleven_series(tasks: MemoryTasks) -> None:
    m = Metrics(tasks)
    failed = run(m, "default/a", RunStatus.FAILED, took=1.5)
    succeeded = run(m, "default/a", RunStatus.SUCCEEDED, at=T0, attempt=2, took=0.25, late=3)
    found = samples(m)
    assert of_task(found, "default/a") == STEADY
    task = frozenset({("task", "default/a")})
    assert succeeded.finished_at is not None
    assert failed.finished_at is not None
    assert found[("crontask_task_last_success_timestamp_seconds", task)] == (
        succeeded.finished_at.timestamp()
    )
    assert found[("crontask_task_last_failure_timestamp_seconds", task)] == (
        failed.finished_at.timestamp()
    )
    assert found[("crontask_task_last_run_duration_seconds", task)] == 0.25
    # Histograms carry no task label: one series set for all tasks.
    assert found[("crontask_run_duration_seconds_count", frozenset())] == 2
    assert found[("crontask_run_duration_seconds_sum", frozenset())] == 1.75
    assert found[("crontask_run_start_delay_seconds_count", frozenset())] == 1  # attempt 1 only
    assert found[("crontask_run_start_delay_seconds_sum", frozenset())] == 0.5


def test_skipped_appears_at_its_first_occurrence(tasks: MemoryTasks) -> None:
    m = Metrics(tasks)
    run(m, "default/a", RunStatus.TIMED_OUT)
    m.on_run(skipped("default/a", T0 + timedelta(minutes=1)))
    found = samples(m)
    assert of_task(found, "default/a") == (STEADY - {
        ("crontask_task_last_success_timestamp_seconds", None)
    }) | {("crontask_runs_total", "skipped")}  # fmt: skip
    task = ("task", "default/a")
    assert found[("crontask_runs_total", frozenset({task, ("status", "timedOut")}))] == 1
    assert found[("crontask_runs_total", frozenset({task, ("status", "skipped")}))] == 1
    # A timeout is a failure; a skip did not run, so it has no duration.
    assert found[("crontask_task_last_failure_timestamp_seconds", frozenset({task}))] == (
        (T0 + timedelta(seconds=2.5)).timestamp()
    )
    assert found[("crontask_run_duration_seconds_count", frozenset())] == 1


def test_a_run_interrupted_by_crontasks_shutdown_is_no_failure(tasks: MemoryTasks) -> None:
    m = Metrics(tasks)
    started, _ = attempt("default/a", RunStatus.INTERRUPTED)
    m.on_run(started)
    m.on_run(
        started.finish(RunStatus.INTERRUPTED, finished_at=T0 + timedelta(3), reason="Shutdown")
    )
    last_failure = "crontask_task_last_failure_timestamp_seconds"
    assert value(m, last_failure, task="default/a") is None
    assert value(m, "crontask_runs_total", task="default/a", status="interrupted") == 1
    # Interrupted otherwise (the process died, the replica was lost) is the task's failure.
    run(m, "default/a", RunStatus.INTERRUPTED, at=T0 + timedelta(minutes=1))
    assert (
        value(m, last_failure, task="default/a")
        == (T0 + timedelta(minutes=1, seconds=2.5)).timestamp()
    )


def test_no_created_series_and_no_task_label_on_histograms(tasks: MemoryTasks) -> None:
    m = Metrics(tasks)
    run(m, "default/a", RunStatus.SUCCEEDED)
    m.reconciled(True, 0.01, DesiredState(tasks={}))
    m.pruned(3, 0.2, T0.timestamp())
    body, _ = m.render()
    text = body.decode()
    assert "_created" not in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    histograms = [f for f in families.values() if f.type == "histogram"]
    assert {f.name for f in histograms} == {
        "crontask_reconcile_duration_seconds",
        "crontask_run_duration_seconds",
        "crontask_run_start_delay_seconds",
        "crontask_history_prune_duration_seconds",
    }
    for family in histograms:
        assert all("task" not in s.labels for s in family.samples), family.name


def test_per_task_histograms_only_with_the_flag(tasks: MemoryTasks) -> None:
    tasks.set(definition("b"), NEXT, 60.0)
    m = Metrics(tasks, per_task_histograms=True)
    run(m, "default/a", RunStatus.SUCCEEDED, took=7)
    found = samples(m)
    buckets = {
        dict(labels)["task"]: v
        for (name, labels), v in found.items()
        if name == "crontask_run_duration_seconds_bucket" and ("le", "10.0") in labels
    }
    assert buckets == {"default/a": 1, "default/b": 0}  # every task, from zero
    # 14 buckets, +Inf, _count and _sum: 17 more series per task, as --help says.
    extra = of_task(found, "default/b") - of_task(samples(Metrics(tasks)), "default/b")
    assert len([s for s in found if dict(s[1]).get("task") == "default/b"]) - 8 == 17
    assert {name for name, _ in extra} == {
        "crontask_run_duration_seconds_bucket",
        "crontask_run_duration_seconds_count",
        "crontask_run_duration_seconds_sum",
    }
    assert ("crontask_run_duration_seconds_count", frozenset()) not in found
    assert found[("crontask_run_duration_seconds_sum", frozenset({("task", "default/a")}))] == 7


def test_a_removed_task_loses_its_series_and_its_state(tasks: MemoryTasks) -> None:
    tasks.set(definition("b"), NEXT, 60.0)
    m = Metrics(tasks)
    run(m, "default/b", RunStatus.FAILED)
    assert of_task(samples(m), "default/b")
    tasks.remove("default/b")
    found = samples(m)
    assert not of_task(found, "default/b")
    assert of_task(found, "default/a")
    # Its run state went with it: declared again, it starts from zero.
    tasks.set(definition("b"), NEXT, 60.0)
    again = ("crontask_runs_total", frozenset({("task", "default/b"), ("status", "failed")}))
    assert samples(m)[again] == 0


def test_a_run_recorded_during_a_scrape_is_not_lost() -> None:
    """A task added after the snapshot was taken, that already ran, keeps its state although
    the snapshot does not list it."""
    m: Metrics

    class Racing(MemoryTasks):
        def snapshot(self) -> dict[str, TaskSlot]:
            taken = super().snapshot()
            if "default/late" not in taken:  # meanwhile, on the loop: added, and it ran
                self.set(definition("late"), NEXT, 60.0)
                run(m, "default/late", RunStatus.SUCCEEDED)
            return taken

    racing = Racing()
    m = Metrics(racing)
    assert not of_task(samples(m), "default/late")
    late = ("crontask_runs_total", frozenset({("task", "default/late"), ("status", "succeeded")}))
    assert samples(m)[late] == 1


def test_suspended_and_flagged_tasks(tasks: MemoryTasks) -> None:
    tasks.set(definition("paused", suspend=True))
    tasks.set(definition("broken"), NEXT, 60.0)
    # Its file broke: its last good definition is kept, flagged.
    tasks.set(dataclasses.replace(definition("kept"), error="a.yaml:3:1: bad"), NEXT, 60.0)
    m = Metrics(tasks)
    broken = Location("file", "b.yaml", 1, 1)
    m.reconciled(
        True,
        0.02,
        DesiredState(
            tasks={},
            errors=(DefinitionError(broken, "bad schedule", "default/broken"),),
            conflicts=(Conflict("default/a", Location("git", "x.yaml", 1, 1), (broken,)),),
        ),
    )
    found = samples(m)
    assert of_task(found, "default/paused") == {
        ("crontask_runs_total", "succeeded"),
        ("crontask_runs_total", "failed"),
        ("crontask_runs_total", "timedOut"),
        ("crontask_runs_total", "interrupted"),
        ("crontask_running_runs", None),
    }
    assert value(m, "crontask_tasks", source="file", state="Suspended") == 1
    assert value(m, "crontask_tasks", source="file", state="Error") == 3
    assert value(m, "crontask_tasks", source="file", state="Ready") == 0
    assert value(m, "crontask_tasks", source="kubernetes", state="Ready") == 0
    # The file's own error, and the conflict its definition loses to the git one.
    assert value(m, "crontask_definition_errors", source="file") == 2
    assert value(m, "crontask_definition_errors", source="git") == 1
    m.reconciled(False, 0.5)  # a failed pass changes neither
    assert value(m, "crontask_definition_errors", source="git") == 1
    assert value(m, "crontask_reconcile_total", result="error") == 1
    assert value(m, "crontask_reconcile_duration_seconds_count") == 2


def test_a_task_kept_on_its_last_good_definition_is_in_error(tasks: MemoryTasks) -> None:
    """Its file no longer reads (a syntax error names no task): the scheduler still holds the
    last good definition, unflagged; the declared one carries the error, and the API shows the
    task as ``Error``, so the gauge must too (it said ``Ready``)."""
    kept, fine = definition("kept"), definition("fine", path="b.yaml")
    tasks.set(kept, NEXT, 60.0)
    tasks.set(fine, NEXT, 60.0)
    m = Metrics(tasks)
    syntax = DefinitionError(Location("file", "a.yaml", 4, 1), "mapping values are not allowed")
    m.reconciled(
        True,
        0.02,
        DesiredState(
            tasks={
                "default/kept": dataclasses.replace(kept, error=str(syntax)),
                "default/fine": fine,
            },
            errors=(syntax,),
        ),
    )
    assert value(m, "crontask_tasks", source="file", state="Error") == 1
    assert value(m, "crontask_tasks", source="file", state="Ready") == 2  # and default/a
    m.reconciled(True, 0.02, DesiredState(tasks={"default/kept": kept, "default/fine": fine}))
    assert value(m, "crontask_tasks", source="file", state="Error") == 0


def test_running_counts_attempts_in_progress(tasks: MemoryTasks) -> None:
    m = Metrics(tasks)
    since = "crontask_task_running_since_timestamp_seconds"
    first, first_done = attempt("default/a", RunStatus.FAILED)
    second, second_done = attempt("default/a", RunStatus.SUCCEEDED, at=NEXT)
    assert value(m, since, task="default/a") is None  # no series while nothing runs
    m.on_run(first)
    m.on_run(first)  # the same attempt again changes nothing
    m.on_run(second)
    assert value(m, "crontask_running_runs", task="default/a") == 2
    assert first.started_at is not None
    assert second.started_at is not None
    # The oldest attempt in progress: a run that hangs keeps its start, whatever follows it.
    assert value(m, since, task="default/a") == first.started_at.timestamp()
    m.on_run(first_done)
    assert value(m, "crontask_running_runs", task="default/a") == 1
    assert value(m, since, task="default/a") == second.started_at.timestamp()
    m.on_run(skipped("default/a", NEXT + timedelta(minutes=1)))  # never started
    assert value(m, "crontask_running_runs", task="default/a") == 1
    m.on_run(second_done)
    assert value(m, since, task="default/a") is None
    assert value(m, "crontask_running_runs", task="default/a") == 0


def test_a_running_task_has_one_more_series_while_it_runs(tasks: MemoryTasks) -> None:
    m = Metrics(tasks)
    run(m, "default/a", RunStatus.FAILED)
    run(m, "default/a", RunStatus.SUCCEEDED, attempt=2)
    started, _ = attempt("default/a", RunStatus.SUCCEEDED, at=NEXT)
    m.on_run(started)
    since = ("crontask_task_running_since_timestamp_seconds", None)
    assert of_task(samples(m), "default/a") == STEADY | {since}


def test_sources_and_retention() -> None:
    class Git:
        kind = "git"
        revision: str | None = "abc123"
        last_sync: datetime | None = T0
        sync_failures = 0

    class Folder:
        kind = "file"
        revision = None
        last_sync = None
        sync_failures = 0

    git = Git()

    m = Metrics(sources=lambda: [git, Folder()])
    assert value(m, "crontask_source_info", source="git", revision="abc123") == 1
    assert value(m, "crontask_source_last_sync_timestamp_seconds", source="git") == (T0.timestamp())
    assert value(m, "crontask_source_sync_errors_total", source="git") == 0
    assert value(m, "crontask_source_info", source="file", revision="") is None
    assert value(m, "crontask_history_last_prune_timestamp_seconds") is None
    git.sync_failures = 1  # the source counts its failed syncs; a scrape reads the count
    m.pruned(5, 0.3, T0.timestamp())
    m.pruned(2, 0.1, NEXT.timestamp())
    assert value(m, "crontask_source_sync_errors_total", source="git") == 1
    assert value(m, "crontask_history_pruned_records_total") == 7
    assert value(m, "crontask_history_last_prune_timestamp_seconds") == NEXT.timestamp()
    assert value(m, "crontask_history_prune_duration_seconds_count") == 2


def test_concurrent_scrapes_agree_with_each_other() -> None:
    """Scrapes in threads while runs are recorded: each scrape is one consistent instant
    (every finished attempt in the histogram is in exactly one task's counters), and scrapes
    of an unchanged state are identical."""
    snapshot = MemoryTasks()
    names = [f"t{i}" for i in range(50)]
    for name in names:
        snapshot.set(definition(name), NEXT, 60.0)
    m = Metrics(snapshot)
    stop = threading.Event()
    problems: list[str] = []

    def record() -> None:
        i = 0
        while not stop.is_set():
            run(m, f"default/{names[i % len(names)]}", RunStatus.SUCCEEDED, at=T0 + timedelta(i))
            i += 1

    def scrape() -> None:
        for _ in range(30):
            found = samples(m)
            finished = sum(v for (name, _), v in found.items() if name == "crontask_runs_total")
            count = found[("crontask_run_duration_seconds_count", frozenset())]
            if finished != count:
                problems.append(f"{finished} finished attempts, {count} in the histogram")

    writer = threading.Thread(target=record)
    readers = [threading.Thread(target=scrape) for _ in range(4)]
    writer.start()
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    stop.set()
    writer.join(10)
    assert not problems, problems[:3]

    bodies: list[bytes] = []
    lock = threading.Lock()

    def render() -> None:
        body, _ = m.render()
        with lock:
            bodies.append(body)

    threads = [threading.Thread(target=render) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(bodies) == 8
    assert len(set(bodies)) == 1


def test_collect_is_a_prometheus_client_collector(tasks: MemoryTasks) -> None:
    m = Metrics(tasks)
    run(m, "default/a", RunStatus.FAILED)
    labels = {"task": "default/a", "status": "failed"}
    assert m.registry.get_sample_value("crontask_runs_total", labels) == 1
    from_registry = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in m.registry.collect()
        for s in family.samples
    }
    assert from_registry == samples(m)


def test_bucket_bounds_are_spelled_as_prometheus_client_spells_them() -> None:
    m = Metrics()
    found = samples(m)
    for name, bounds in (
        ("crontask_reconcile_duration_seconds_bucket", RECONCILE_BUCKETS),
        ("crontask_run_duration_seconds_bucket", RUN_BUCKETS),
        ("crontask_run_start_delay_seconds_bucket", DELAY_BUCKETS),
    ):
        les = {dict(labels)["le"] for n, labels in found if n == name}
        spelled = {floatToGoString(b) for b in bounds}  # type: ignore[no-untyped-call]
        assert les == spelled | {"+Inf"}


def test_instances_do_not_share_state() -> None:
    one, two = Metrics(), Metrics()
    one.reconciled(True, 0.1)
    assert value(two, "crontask_reconcile_total", result="success") == 0


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        ("gzip", True),
        ("identity, gzip;q=0.5", True),
        ("GZIP", True),
        ("br, *", True),
        ("", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip;q=0, *", False),
        ("*;q=0", False),
        ("gzip;q=nonsense", False),
        ("deflate, x-gzip", True),
    ],
)
def test_accepts_gzip(header: str, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip


def _lines(text: str) -> Iterator[str]:
    return (line for line in text.splitlines() if line and not line.startswith("#"))


def test_label_values_are_escaped() -> None:
    class Odd:
        kind = "git"
        revision: str | None = 'a"b\\c\nd'
        last_sync: datetime | None = None
        sync_failures = 0

    m = Metrics(sources=lambda: [Odd()])
    text = m.render()[0].decode()
    assert 'crontask_source_info{revision="a\\"b\\\\c\\nd",source="git"} 1' in list(_lines(text))
    assert value(m, "crontask_source_info", source="git", revision='a"b\\c\nd') == 1


def test_replica_series_appear_with_replicas_only(tasks: MemoryTasks) -> None:
    metrics = Metrics(tasks)
    tasks.set(definition("a"), None, None)
    assert value(metrics, "crontask_members") is None  # alone: no replica series at all
    metrics.replicas(3, False)
    metrics.handed_over(4)
    metrics.handed_over(2)
    metrics.replicas(2, True)
    assert value(metrics, "crontask_members") == 2
    assert value(metrics, "crontask_owned_tasks") == 1
    assert value(metrics, "crontask_handovers_total") == 6
    assert value(metrics, "crontask_members_disagreeing") == 1
