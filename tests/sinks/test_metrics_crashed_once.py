"""``Metrics.crashed``: the runs a start-up marked ``interrupted`` for the crontask before it
(``controller.instance.Recovery``) are counted with their task's first read, once each: a run
it tells of (no note that nobody told of it: the store's ``untold`` does not give it), one the
store holds with that note too (``untold`` gives it as well), and one the store could not take
yet. Not again when the task leaves and comes back."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from reconciler.core.runs import UNTOLD, RunRecord, RunStatus
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.store import MemoryRunStore
from reconciler.store.base import interrupted
from tests.helpers import definition
from tests.sinks.test_metrics import NEXT, value
from tests.sinks.test_metrics_running import inline
from tests.store._records import rec

A = "default/a"
DEAD, ME = "h:3:dead", "h:4:me"


def count(metrics: Metrics) -> float | None:
    return value(metrics, "crontask_runs_total", task=A, status="interrupted")


def marked(store: MemoryRunStore, at: int, note: str) -> list[RunRecord]:
    store.claim(rec(A, at=at, status=RunStatus.RUNNING, owner=DEAD))
    return store.mark_interrupted({DEAD}, datetime.now(UTC), note=note)


def started(store: MemoryRunStore) -> tuple[Metrics, MemoryTasks]:
    tasks = MemoryTasks()
    metrics = Metrics(tasks, history=store, owner=ME, started=time.time() - 1, seed_spawn=inline)
    return metrics, tasks


def test_the_runs_a_start_up_tells_of_are_counted_once() -> None:
    store = MemoryRunStore()
    told = marked(store, 1, "")
    metrics, tasks = started(store)
    metrics.crashed(told)
    tasks.set(definition("a"), NEXT, 60.0)
    assert count(metrics) == 0  # 0 first, so that increase() sees the 1
    assert count(metrics) == 1
    assert count(metrics) == 1
    tasks.remove(A)
    assert count(metrics) is None
    tasks.set(definition("a"), NEXT, 60.0)
    assert count(metrics) == 0
    assert count(metrics) == 0


def test_a_run_the_store_gives_as_untold_too_is_counted_once() -> None:
    store = MemoryRunStore()
    both = marked(store, 1, UNTOLD)
    metrics, tasks = started(store)
    metrics.crashed(both)
    tasks.set(definition("a"), NEXT, 60.0)
    assert count(metrics) == 0
    assert count(metrics) == 1
    assert count(metrics) == 1


def test_a_run_the_store_could_not_take_yet_is_counted_once_it_has_it_too() -> None:
    store = MemoryRunStore()
    running = rec(A, at=1, status=RunStatus.RUNNING, owner=DEAD)
    store.claim(running)
    unsaved = interrupted(running, datetime.now(UTC), note=UNTOLD)
    metrics, tasks = started(store)
    metrics.crashed([unsaved])
    tasks.set(definition("a"), NEXT, 60.0)
    assert count(metrics) == 0
    store.complete(unsaved)  # written by the recorder once the store is back
    assert count(metrics) == 1
    assert count(metrics) == 1


def test_this_process_s_own_runs_and_other_ends_are_not_taken() -> None:
    store = MemoryRunStore()
    mine = rec(A, at=1, status=RunStatus.RUNNING, owner=ME)
    failed = rec(A, at=2, status=RunStatus.RUNNING, owner=DEAD)
    metrics, tasks = started(store)
    assert failed.started_at is not None
    metrics.crashed(
        [
            interrupted(mine, datetime.now(UTC)),
            failed.finish(RunStatus.FAILED, finished_at=failed.started_at),
        ]
    )
    tasks.set(definition("a"), NEXT, 60.0)
    for _ in range(3):
        assert count(metrics) == 0
        assert value(metrics, "crontask_runs_total", task=A, status="failed") == 0
