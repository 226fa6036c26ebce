"""Runs in progress that this process did not start show in its metrics: a Job run adopted
here (left running by an earlier crontask or a replica that went), and, with replicas, a run
going on at the replica that gave its task away. Each run shows in one replica's series, its
task's owner's, so that ``CrontaskTaskRunningLong`` can fire for it and "Running now" counts it
once."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection
from datetime import timedelta

import pytest

from reconciler.core.jobs import job_manifest
from reconciler.core.runs import JobDetails, LastOutcomes, RunRecord, RunStatus
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.sinks.metrics_runs import RECHECK_SECONDS
from reconciler.store import MemoryRunStore, StoreUnavailable
from tests.helpers import definition
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until, wired
from tests.jobs.twin import FakeCluster
from tests.sinks._history import PlainReads
from tests.sinks.test_metrics import NEXT, samples, value
from tests.store._records import rec

RUNNING = "crontask_running_runs"
SINCE = "crontask_task_running_since_timestamp_seconds"
FAILURE = "crontask_task_last_failure_timestamp_seconds"
DURATION = "crontask_task_last_run_duration_seconds"
A = "default/a"


class Clock:
    """A monotonic clock moved by hand, for the spacing of the checks of runs elsewhere."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def inline(work: Callable[[], None]) -> None:
    """Run a check of the runs elsewhere in the scrape's thread, so its result shows at once."""
    work()


def running(metrics: Metrics, task: str) -> tuple[float | None, float | None]:
    """``task``'s runs in progress and when the oldest started, as one scrape shows them."""
    found = samples(metrics)
    labels = frozenset({("task", task)})
    return found.get((RUNNING, labels)), found.get((SINCE, labels))


# -- adopted here --------------------------------------------------------------------------


@pytest.mark.parametrize("history", [False, True], ids=["listeners", "listeners+history"])
def test_a_job_run_adopted_here_counts_as_running_from_its_start(history: bool) -> None:
    """Heard from the progress listener alone (no history), and once only when the history
    also says it is in progress (at start-up, a crontask both reads it and adopts it)."""
    store = MemoryRunStore()
    started = T0 - timedelta(minutes=10)
    seen: dict[str, tuple[float | None, float | None]] = {}

    async def main() -> None:
        cluster = FakeCluster()
        d, _ = wired(cluster, store, lambda: T0 + timedelta(hours=1), owner="h:2:new")
        tasks = MemoryTasks()
        tasks.set(job_task(), NEXT, 60.0)
        metrics = Metrics(tasks, history=store if history else None, owner="h:2:new")
        d.subscribe(metrics.on_run)  # as controller/runtime.py wires them
        d.subscribe_progress(metrics.on_progress)
        old = record(started_at=started, owner="h:1:old", job=JobDetails("default", NAME))
        store.claim(old)
        cluster.add(job_manifest(job_task(), old, namespace="default", name=NAME, env={}))
        if history:
            seen["read"] = running(metrics, KEY)  # the store says it runs; nobody adopted it yet
        assert d.adopt(job_task(), old)
        await until(lambda: (store.get(old.id) or old).owner == "h:2:new")
        await until(lambda: value(metrics, RUNNING, task=KEY) == 1)
        assert d.active_count() == 1
        seen["adopted"] = running(metrics, KEY)
        # No start of this process's: no start delay observed.
        assert value(metrics, "crontask_run_start_delay_seconds_count") == 0
        cluster.finish(NAME)
        await until(lambda: not d.active(KEY))
        seen["ended"] = running(metrics, KEY)
        metrics.on_progress(old)  # a record late after the end does not bring it back
        seen["late"] = running(metrics, KEY)
        assert value(metrics, "crontask_runs_total", task=KEY, status="succeeded") == 1
        await d.shutdown(0)

    asyncio.run(main())
    at = started.timestamp()
    if history:
        assert seen["read"] == (1, at)
    assert seen["adopted"] == (1, at)
    assert seen["ended"] == (0, None)
    assert seen["late"] == (0, None)


def test_a_running_record_said_again_is_counted_once() -> None:
    """A Job's name and uid come as progress records of a run already counted."""
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    metrics = Metrics(tasks)
    start = rec(A, at=1, status=RunStatus.RUNNING)
    metrics.on_run(start)
    metrics.on_progress(start)
    metrics.on_progress(rec(A, at=1, status=RunStatus.RUNNING, job=JobDetails("default", "j")))
    assert start.started_at is not None
    assert running(metrics, A) == (1, start.started_at.timestamp())


# -- in progress at the replica that gave the task away --------------------------------------


def test_a_task_that_comes_here_shows_its_run_going_on_elsewhere_until_it_ends_there() -> None:
    store = MemoryRunStore()
    elsewhere = rec(A, at=1, status=RunStatus.RUNNING, owner="h:1:old")
    mine = rec(A, at=50, status=RunStatus.RUNNING, owner="h:2:me")  # a slot claimed ahead
    store.claim(elsewhere)
    store.claim(mine)
    tasks = MemoryTasks()
    clock = Clock()
    metrics = Metrics(tasks, history=store, owner="h:2:me", clock=clock, spawn=inline)
    assert running(metrics, A) == (None, None)
    tasks.set(definition("a"), NEXT, 60.0)  # it came here
    assert elsewhere.started_at is not None
    # Its own claim is not running until its dispatcher says it started.
    assert running(metrics, A) == (1, elsewhere.started_at.timestamp())
    assert running(metrics, A) == (1, elsewhere.started_at.timestamp())  # read once, kept
    here = rec(A, at=2)  # a run of this process's (Allow), 4 s, ended first
    metrics.on_run(dataclasses.replace(here, status=RunStatus.RUNNING, finished_at=None))
    metrics.on_run(here)
    store.save_many([here])
    assert running(metrics, A)[0] == 1
    ended = elsewhere.finish(
        RunStatus.FAILED, finished_at=elsewhere.started_at + timedelta(minutes=10)
    )
    store.complete(ended)  # at the replica that runs it: nobody here hears of it
    assert ended.finished_at is not None
    assert running(metrics, A)[0] == 1  # checked a moment ago: not again before its time
    clock.advance(RECHECK_SECONDS)
    assert running(metrics, A) == (0, None)
    # Its end shows here, at the task's owner, the only one that exports the task: it is
    # the newest, so its duration is the last run's.
    assert value(metrics, FAILURE, task=A) == ended.finished_at.timestamp()
    assert value(metrics, DURATION, task=A) == 600


def test_a_run_going_on_elsewhere_that_is_adopted_here_is_counted_once() -> None:
    store = MemoryRunStore()
    elsewhere = rec(A, at=1, status=RunStatus.RUNNING, owner="h:1:gone")
    store.claim(elsewhere)
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    metrics = Metrics(tasks, history=store, owner="h:2:me")
    assert running(metrics, A)[0] == 1
    adopted = store.take_over(elsewhere.id, 1, "h:2:me")
    assert adopted is not None
    metrics.on_progress(adopted)
    assert running(metrics, A)[0] == 1
    # Followed here now: its end is heard here, whatever the history says meanwhile.
    assert adopted.started_at is not None
    metrics.on_run(adopted.finish(RunStatus.SUCCEEDED, finished_at=adopted.started_at))
    assert running(metrics, A) == (0, None)


def test_each_run_in_progress_shows_once_across_replicas_at_its_task_s_owner() -> None:
    """Replica 1 runs a run of ``a``; ``a`` moves to replica 2 while the run goes on: replica 1
    keeps the run (its end will be heard there) but exports no series of ``a``; replica 2
    exports it from the store. When ``a`` comes back, replica 1 shows the run again."""
    store = MemoryRunStore()
    one_tasks, two_tasks = MemoryTasks(), MemoryTasks()
    one = Metrics(one_tasks, history=store, owner="h:1:one")
    two = Metrics(two_tasks, history=store, owner="h:2:two")
    one_tasks.set(definition("a"), NEXT, 60.0)
    start = rec(A, at=1, status=RunStatus.RUNNING, owner="h:1:one")
    store.claim(start)
    one.on_run(start)
    assert running(one, A)[0] == 1
    assert running(two, A) == (None, None)
    one_tasks.remove(A)  # a handover
    two_tasks.set(definition("a"), NEXT, 60.0)
    assert running(one, A) == (None, None)
    assert running(two, A)[0] == 1
    running(one, A)  # scraped again while the run goes on: its state is not dropped
    two_tasks.remove(A)  # and back
    one_tasks.set(definition("a"), NEXT, 60.0)
    assert running(one, A)[0] == 1
    assert running(two, A) == (None, None)
    assert start.started_at is not None
    final = start.finish(RunStatus.SUCCEEDED, finished_at=start.started_at + timedelta(seconds=1))
    store.complete(final)
    one.on_run(final)
    assert running(one, A) == (0, None)


def test_a_run_in_progress_here_keeps_its_task_s_state_while_the_task_is_away() -> None:
    """Without a history: only this process's own state says that the run goes on."""
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    metrics = Metrics(tasks)
    start = rec(A, at=1, status=RunStatus.RUNNING)
    metrics.on_run(start)
    tasks.remove(A)
    samples(metrics)
    samples(metrics)
    tasks.set(definition("a"), NEXT, 60.0)
    assert start.started_at is not None
    assert running(metrics, A) == (1, start.started_at.timestamp())
    # Ended while away: then the state goes with the task. Its end is counted by the task's
    # owner meanwhile, the one that exported it then (test_metrics_counted_elsewhere), not
    # again here when the task comes back.
    tasks.remove(A)
    metrics.on_run(start.finish(RunStatus.SUCCEEDED, finished_at=start.started_at))
    samples(metrics)
    samples(metrics)
    tasks.set(definition("a"), NEXT, 60.0)
    assert value(metrics, "crontask_runs_total", task=A, status="succeeded") == 0


class Flaky(PlainReads):
    """The run store as the metrics' history, whose runs in progress cannot be read while
    ``down``."""

    def __init__(self, store: MemoryRunStore) -> None:
        self.store = store
        self.down = False

    def last_outcomes(self, tasks: Collection[str]) -> dict[str, LastOutcomes]:
        return self.store.last_outcomes(tasks)

    def running(self, task: str | None = None) -> list[RunRecord]:
        if self.down:
            raise StoreUnavailable("database is locked")
        return self.store.running(task)


def test_a_run_elsewhere_stays_while_the_history_cannot_be_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryRunStore()
    elsewhere = rec(A, at=1, status=RunStatus.RUNNING, owner="h:1:old")
    store.claim(elsewhere)
    history = Flaky(store)
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    clock = Clock()
    metrics = Metrics(tasks, history=history, owner="h:2:me", clock=clock, spawn=inline)
    assert running(metrics, A)[0] == 1
    assert elsewhere.started_at is not None
    store.complete(elsewhere.finish(RunStatus.SUCCEEDED, finished_at=elsewhere.started_at))
    history.down = True
    with caplog.at_level(logging.WARNING, logger="crontask.metrics"):
        assert running(metrics, A)[0] == 1
    assert "cannot read the runs in progress" in caplog.text
    history.down = False
    clock.advance(RECHECK_SECONDS)
    assert running(metrics, A) == (0, None)
