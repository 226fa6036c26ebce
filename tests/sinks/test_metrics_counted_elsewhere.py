"""Every attempt that ends is counted in ``crontask_runs_total`` by the replica that exports its
task, though that replica did not hear it end: a run still going on at the replica that gave
the task away (counted when the store says it ended), one that ended there between the
handover and the new owner's first read of the task, and the runs a dead crontask left, marked
``interrupted`` in the store by whoever found them dead (a start-up after a crash, a survivor).
Counted once: not again by the old owner while it no longer exports the task, nor when the
task leaves and comes back, nor a run the old owner counted while it still exported the
task."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from reconciler.core.runs import UNTOLD, RunStatus
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.sinks.metrics_runs import RECHECK_SECONDS
from reconciler.store import MemoryRunStore
from tests.helpers import definition
from tests.sinks.test_metrics import NEXT, value
from tests.sinks.test_metrics_running import Clock, inline
from tests.store._records import rec

A = "default/a"
TOTAL = "crontask_runs_total"
ONE, TWO, DEAD = "h:1:one", "h:2:two", "h:3:dead"


def count(metrics: Metrics, status: str) -> float | None:
    return value(metrics, TOTAL, task=A, status=status)


def replica(store: MemoryRunStore, owner: str, clock: Clock) -> tuple[Metrics, MemoryTasks]:
    tasks = MemoryTasks()
    metrics = Metrics(
        tasks, history=store, owner=owner, clock=clock, spawn=inline, seed_spawn=inline
    )
    return metrics, tasks


def test_a_run_that_ends_where_it_ran_is_counted_by_its_task_s_new_owner() -> None:
    """Each attempt of the run that ends while the task is here: a retried one too."""
    store, clock = MemoryRunStore(), Clock()
    first = rec(A, at=1, status=RunStatus.RUNNING, owner=ONE)
    store.claim(first)
    two, tasks = replica(store, TWO, clock)
    tasks.set(definition("a"), NEXT, 60.0)  # it came here while the run goes on at one
    assert count(two, "failed") == 0
    assert first.started_at is not None
    store.complete(first.finish(RunStatus.FAILED, finished_at=first.started_at))
    retry = rec(A, at=1, status=RunStatus.RUNNING, owner=ONE, attempt=2)
    store.claim(retry)
    clock.advance(RECHECK_SECONDS)
    assert count(two, "failed") == 0  # the run goes on: its attempts are counted at its end
    assert retry.started_at is not None
    store.complete(retry.finish(RunStatus.SUCCEEDED, finished_at=retry.started_at))
    clock.advance(RECHECK_SECONDS)
    assert (count(two, "failed"), count(two, "succeeded")) == (1, 1)
    clock.advance(RECHECK_SECONDS)
    assert (count(two, "failed"), count(two, "succeeded")) == (1, 1)


def test_a_run_in_progress_at_a_handover_is_counted_once_across_replicas() -> None:
    store, clock = MemoryRunStore(), Clock()
    one, one_tasks = replica(store, ONE, clock)
    two, two_tasks = replica(store, TWO, clock)
    one_tasks.set(definition("a"), NEXT, 60.0)
    start = rec(A, at=1, status=RunStatus.RUNNING, owner=ONE)
    store.claim(start)
    one.on_run(start)
    assert count(one, "succeeded") == 0
    one_tasks.remove(A)  # the handover
    two_tasks.set(definition("a"), NEXT, 60.0)
    one.handed_over(1)
    two.handed_over(1)
    assert count(two, "succeeded") == 0
    assert start.started_at is not None
    end = start.finish(RunStatus.SUCCEEDED, finished_at=start.started_at)
    store.complete(end)
    one.on_run(end)  # heard where it ran, which no longer exports the task
    clock.advance(RECHECK_SECONDS)
    assert count(one, "succeeded") is None
    assert count(two, "succeeded") == 1
    clock.advance(RECHECK_SECONDS)
    assert (count(one, "succeeded"), count(two, "succeeded")) == (None, 1)


def test_a_run_that_ends_before_the_new_owner_first_reads_its_task_is_counted_there() -> None:
    """At 0 first, so that ``increase()`` sees the 1 (a series that appears at 1 has no 0
    before it)."""
    store, clock = MemoryRunStore(), Clock()
    one, one_tasks = replica(store, ONE, clock)
    two, two_tasks = replica(store, TWO, clock)
    one_tasks.set(definition("a"), NEXT, 60.0)
    start = rec(A, at=1, status=RunStatus.RUNNING, owner=ONE)
    store.claim(start)
    one.on_run(start)
    assert count(one, "timedOut") == 0
    one_tasks.remove(A)
    two_tasks.set(definition("a"), NEXT, 60.0)
    one.handed_over(1)
    two.handed_over(1)  # no scrape of two's before the run ends
    assert start.started_at is not None
    end = start.finish(RunStatus.TIMED_OUT, finished_at=start.started_at)
    store.complete(end)
    one.on_run(end)
    assert count(one, "timedOut") is None
    assert count(two, "timedOut") == 0
    assert count(two, "timedOut") == 1
    assert count(two, "timedOut") == 1


def test_a_run_the_old_owner_counted_while_it_exported_the_task_is_not_counted_again() -> None:
    store, clock = MemoryRunStore(), Clock()
    one, one_tasks = replica(store, ONE, clock)
    two, two_tasks = replica(store, TWO, clock)
    one_tasks.set(definition("a"), NEXT, 60.0)
    start = rec(A, at=1, status=RunStatus.RUNNING, owner=ONE)
    store.claim(start)
    one.on_run(start)
    assert start.started_at is not None
    end = start.finish(RunStatus.FAILED, finished_at=start.started_at)
    store.complete(end)
    one.on_run(end)
    assert count(one, "failed") == 1
    one_tasks.remove(A)
    two_tasks.set(definition("a"), NEXT, 60.0)
    one.handed_over(1)
    two.handed_over(1)
    for _ in range(3):
        clock.advance(RECHECK_SECONDS)
        assert count(two, "failed") == 0


def test_the_runs_of_a_dead_replica_are_counted_by_their_task_s_new_owner() -> None:
    """A survivor marks them before the tasks move (``controller.sweep``): no one saw them end.
    Counted once, also when the task leaves and comes back."""
    store, clock = MemoryRunStore(), Clock()
    two, tasks = replica(store, TWO, clock)
    two.replicas(3, False)  # joined long before
    dead = rec(A, at=1, status=RunStatus.RUNNING, owner=DEAD)
    store.claim(dead)
    assert store.mark_interrupted({DEAD}, datetime.now(UTC), note=UNTOLD)
    tasks.set(definition("a"), NEXT, 60.0)
    two.handed_over(1)
    assert count(two, "interrupted") == 0
    assert count(two, "interrupted") == 1
    tasks.remove(A)
    assert count(two, "interrupted") is None
    tasks.set(definition("a"), NEXT, 60.0)
    assert count(two, "interrupted") == 0
    assert count(two, "interrupted") == 0


def test_the_runs_a_crash_left_are_counted_by_the_next_start() -> None:
    """Marked ``interrupted`` at start-up (``controller.instance.recover``), before the metrics
    exist; not those marked before this process started."""
    store = MemoryRunStore()
    started = time.time()
    old = rec(A, at=1, status=RunStatus.RUNNING, owner="h:9:older")
    store.claim(old)
    older = datetime.now(UTC) - timedelta(hours=1)
    assert store.mark_interrupted({"h:9:older"}, older, note=UNTOLD)
    crashed = rec(A, at=2, status=RunStatus.RUNNING, owner=DEAD)
    store.claim(crashed)
    assert store.mark_interrupted({DEAD}, datetime.now(UTC), note=UNTOLD)
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    metrics = Metrics(tasks, history=store, owner=TWO, started=started, seed_spawn=inline)
    assert count(metrics, "interrupted") == 0
    assert count(metrics, "interrupted") == 1
    assert count(metrics, "interrupted") == 1
