"""The max age finds a task's last success by one seek, however long the task has failed since.

A task that succeeded before ``--history-max-age`` and failed every slot since keeps that
success (its last success, ``base.RetentionTally``). To tell that no later success exists, the
SQL store's age prune read every newer run of the task, in every prune: on SQLite, with its
write lock held, 0.8 s a transaction where it had been 0.03 s. Counted here in SQLite virtual
machine instructions (deterministic, unlike time): the prune costs about the same whether 50 or
1 000 failures came after the success.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconciler.core.runs import RunStatus
from reconciler.store import open_store, sqlite_url
from reconciler.store.sql import SqlRunStore

from ._records import T0, everything, rec

NOW = T0 + timedelta(days=40)
STEP = 100  # instructions between two calls of the progress handler


def _instructions(store: SqlRunStore, work: Callable[[], object]) -> int:
    """The SQLite instructions (in STEPs) ``work`` costs ``store``: counted on each connection
    checked out meanwhile (one checked out before goes on counting into a list nobody reads)."""
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    def count(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.set_progress_handler(tick, STEP)

    sa.event.listen(store.engine, "checkout", count)
    try:
        work()
        return counted[0]
    finally:
        sa.event.remove(store.engine, "checkout", count)


def _instructions_of_a_prune(directory: Path, failures: int) -> Iterator[int]:
    """Ten tasks, each with a success 40 days ago and ``failures`` failures in the last 29
    days; the instructions (in STEPs) of each of two age prunes, which delete nothing."""
    directory.mkdir()
    store = open_store(sqlite_url(directory), writer=True)
    assert isinstance(store, SqlRunStore)
    tasks = [f"ops/t{n}" for n in range(10)]
    minutes = 29 * 24 * 60
    store.save_many(
        [rec(task, 0) for task in tasks]
        + [
            rec(task, 11 * 24 * 60 + n * minutes // failures, RunStatus.FAILED, exit_code=1)
            for task in tasks
            for n in range(failures)
        ]
    )
    # With statistics (crontask runs no ANALYZE, but a database may have them: an operator's,
    # a copy) SQLite reads a task's newer runs through ix_runs_task_scheduled, as the
    # reviewer's 300 000 runs did; without them it happened to seek the succeeded range.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    try:
        for _ in range(2):
            yield _instructions(
                store,
                lambda: store.prune({}, timedelta(days=30), NOW, declared=set(tasks), retrying=()),
            )
        assert len(everything(store)) == len(tasks) * (failures + 1)  # the successes stay
    finally:
        store.close()


def test_a_long_failing_history_does_not_make_the_age_prune_read_it(tmp_path: Path) -> None:
    short = list(_instructions_of_a_prune(tmp_path / "short", 50))
    long = list(_instructions_of_a_prune(tmp_path / "long", 1_000))
    # Not a ratio of 20, the histories' (the rows read); some slack for the deeper index.
    assert max(long) < 2 * max(short), (short, long)


def _instructions_of_a_limits_prune(directory: Path, others: int) -> int:
    """One task whose only success is its oldest run, then 20 failures; ``others`` tasks with
    ten newer successes each. The instructions (in STEPs) of a prune by limits of that task
    alone, on a store without statistics (crontask runs no ANALYZE)."""
    directory.mkdir()
    store = open_store(sqlite_url(directory), writer=True)
    assert isinstance(store, SqlRunStore)
    task = "ops/failing"
    store.save_many(
        [rec(task, 0)]
        + [rec(task, 60 + n, RunStatus.FAILED, exit_code=1) for n in range(20)]
        + [rec(f"ops/o{n}", 120 + m) for n in range(others) for m in range(10)]
    )
    spent = _instructions(
        store, lambda: store.prune({task: (5, 5)}, None, NOW, declared={task}, retrying=())
    )
    kept = [r for r in everything(store) if r.task == task]
    store.close()
    assert any(r.status is RunStatus.SUCCEEDED for r in kept)  # its last success stays
    return spent


def test_a_limits_prune_finds_a_task_s_last_success_without_reading_the_others(
    tmp_path: Path,
) -> None:
    """The last success is one seek at the end of the task's succeeded range: SQLite, without
    statistics, served the query's order from ix_runs_status_scheduled instead and walked every
    newer success of every task (9 s write transactions on a million runs)."""
    few = _instructions_of_a_limits_prune(tmp_path / "few", 10)
    many = _instructions_of_a_limits_prune(tmp_path / "many", 2_000)
    assert many < 2 * few, (few, many)
