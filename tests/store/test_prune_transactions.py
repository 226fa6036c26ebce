"""Prune deletes in transactions of about ``_PRUNE_TX_ROWS`` rows, whatever the shape of the
excess: SQLite holds its single write lock until a transaction commits, and every claim (a slot
that is about to start) waits behind it, so one task far past its history limits must not be
deleted in one long transaction. A run goes whole, in one transaction: one may pass the bound
by the attempts of a run."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
import types
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import RunStore, sql_retention
from reconciler.store.sql import SqlRunStore

from ._records import T0, everything, rec, reference_prune, sort_key

_TX_ROWS = 7
_ATTEMPTS = 3  # the most attempts of a run in _history
_BOUND = _TX_ROWS + _ATTEMPTS - 1  # a transaction's rows, its last run whole
_TASK = "ops/flood"


@contextlib.contextmanager
def _deleted_per_transaction(engine: Engine) -> Iterator[list[int]]:
    """Rows deleted by each committed transaction on ``engine``, in commit order (the list
    yielded fills as transactions commit). Counted from the driver's rowcount of every DELETE,
    so it sees the statements the store really ran, whatever builds them."""
    committed: list[int] = []
    pending = [0]

    def after_execute(
        conn: Connection, cursor: Any, statement: str, *args: object, **kwargs: object
    ) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            pending[0] += cursor.rowcount

    def on_commit(conn: Connection) -> None:
        committed.append(pending[0])
        pending[0] = 0

    event.listen(engine, "after_cursor_execute", after_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield committed
    finally:
        event.remove(engine, "after_cursor_execute", after_execute)
        event.remove(engine, "commit", on_commit)
    assert pending[0] == 0, "rows deleted in a transaction that did not commit"


def _history(rnd: random.Random, task: str, slots: int) -> list[RunRecord]:
    """``slots`` runs of ``task``, some retried (a retry that succeeded after a failure makes a
    succeeded run whose first attempt failed: deleting attempts in the wrong order would change
    how the rest of the run is counted)."""
    statuses = list(RunStatus)
    weights = [
        1 if s is RunStatus.RUNNING else 6 if s is RunStatus.SUCCEEDED else 2 for s in statuses
    ]
    records: list[RunRecord] = []
    for minute in range(slots):
        attempts = rnd.choice([1, 1, 1, 2, _ATTEMPTS])
        for attempt in range(1, attempts + 1):
            status = rnd.choices(statuses, weights)[0]
            if attempt < attempts and status is RunStatus.RUNNING:
                status = RunStatus.FAILED  # only the latest attempt of a run can be running
            records.append(rec(task, minute, status, attempt=attempt))
    return records


@pytest.mark.parametrize(
    ("limits", "seed"),
    [
        # Every bucket fills early: the excess is the range behind the last kept run.
        pytest.param((2, 1), 1, id="range-behind-the-kept-runs"),
        pytest.param((0, 0), 2, id="zero-limits"),
        # The failed bucket never fills: the excess is scattered among the kept runs.
        pytest.param((1, 1000), 3, id="scattered-among-kept-runs"),
        pytest.param((1000, 2), 4, id="scattered-failures"),
    ],
)
def test_a_task_far_past_its_limits_is_pruned_in_small_transactions(
    sql_store: RunStore,
    monkeypatch: pytest.MonkeyPatch,
    limits: tuple[int, int],
    seed: int,
) -> None:
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_ROWS", _TX_ROWS)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)  # many transactions
    monkeypatch.setattr(sql_retention, "_DELETE_CHUNK", 3)
    rnd = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    records = _history(rnd, _TASK, 120) + _history(rnd, "ops/small", 5)
    assert isinstance(sql_store, SqlRunStore)
    sql_store.insert_many(records)
    all_limits = {_TASK: limits, "ops/small": (1, 1)}
    expected = reference_prune(records, all_limits, None, T0)
    assert len(records) - len(expected) > 5 * _TX_ROWS  # the flood needs many transactions

    with _deleted_per_transaction(sql_store.engine) as per_tx:
        deleted = sql_store.prune(all_limits, None, T0)

    assert max(per_tx) <= _BOUND, per_tx
    assert sum(per_tx) == deleted == len(records) - len(expected)
    assert sorted(map(sort_key, everything(sql_store))) == sorted(map(sort_key, expected))


def test_the_max_age_and_limits_together_stay_within_the_bound(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_ROWS", _TX_ROWS)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)  # many transactions
    rnd = random.Random(5)  # noqa: S311 - reproducible test data, not secrets
    records = [r for task in ("a/one", "a/two", "b/three") for r in _history(rnd, task, 40)]
    assert isinstance(sql_store, SqlRunStore)
    sql_store.insert_many(records)
    limits = {"a/one": (3, 2), "a/two": (1, 30)}
    now, max_age = T0 + timedelta(minutes=40), timedelta(minutes=25)
    expected = reference_prune(records, limits, max_age, now)

    with _deleted_per_transaction(sql_store.engine) as per_tx:
        deleted = sql_store.prune(limits, max_age, now)

    assert max(per_tx) <= _BOUND, per_tx
    assert sum(per_tx) == deleted == len(records) - len(expected)
    assert sorted(map(sort_key, everything(sql_store))) == sorted(map(sort_key, expected))


def test_a_run_is_never_split_between_transactions(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of more attempts than a transaction holds goes whole in one: were its oldest
    attempts deleted in one transaction and the rest in the next, a retry claimed in between
    (or, on PostgreSQL, by another replica) would keep the rest, and the history would show a
    run without its first attempts."""
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_ROWS", 2)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)  # many transactions
    assert isinstance(sql_store, SqlRunStore)
    for attempt in (1, 2, 3):  # past the failed limit: the newer run below is the one kept
        sql_store.claim(rec(_TASK, 0, RunStatus.FAILED, attempt=attempt))
    sql_store.claim(rec(_TASK, 10, RunStatus.FAILED))
    real = sql_store._tx
    commits = [0]

    @contextlib.contextmanager
    def transaction(**kwargs: Any) -> Iterator[Connection]:
        with real(**kwargs) as conn:
            yield conn
        commits[0] += 1
        if commits[0] == 1:  # between the first transaction and the next: a retry starts
            sql_store.claim(rec(_TASK, 0, RunStatus.RUNNING, attempt=4))

    monkeypatch.setattr(sql_store, "_tx", transaction)
    sql_store.prune({_TASK: (5, 1)}, None, T0 + timedelta(days=1))

    left = {r.attempt for r in everything(sql_store) if r.scheduled_at == T0}
    # Deleted whole before the retry came (which stays, running), never a part of it.
    assert left == {4}


def test_tasks_within_their_limits_are_walked_a_few_at_a_time(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing to delete, but each task's newest runs to read: 10 000 such tasks walked in one
    transaction held SQLite's write lock for a second, every claim waiting behind it."""
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_TASKS", 3)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)
    assert isinstance(sql_store, SqlRunStore)
    tasks = [f"ops/t{i:02d}" for i in range(10)]
    sql_store.insert_many([rec(task, minute) for task in tasks for minute in range(2)])

    with _deleted_per_transaction(sql_store.engine) as per_tx:
        assert sql_store.prune({task: (5, 5) for task in tasks}, None, T0) == 0

    assert per_tx == [0, 0, 0, 0]  # 3 + 3 + 3 + 1 tasks


def test_sqlite_lets_waiting_writes_in_between_prune_transactions(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim waiting for SQLite's write lock tries again only every 100 ms: a prune that
    took the lock again at once kept it out for seconds. It pauses between its transactions
    (never after the last); PostgreSQL, which locks rows, needs no pause."""
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_ROWS", _TX_ROWS)
    paused: list[float] = []
    # The module's own name for time, not the time module everyone shares.
    monkeypatch.setattr(
        "reconciler.store.sql_retention.time",
        types.SimpleNamespace(sleep=paused.append, monotonic=time.monotonic),
    )
    assert isinstance(sql_store, SqlRunStore)
    records = _history(random.Random(6), _TASK, 60)  # noqa: S311 - reproducible test data
    sql_store.insert_many(records)

    with _deleted_per_transaction(sql_store.engine) as per_tx:
        sql_store.prune({_TASK: (0, 0)}, None, T0)

    transactions = len(per_tx)
    assert transactions > 3
    if sql_store.engine.dialect.name == "sqlite":
        assert paused == [sql_retention.SQLITE_PRUNE_PAUSE] * (transactions - 1)
    else:
        assert set(paused) <= {0.0}


def test_a_long_prune_says_how_far_it_is(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A prune of many transactions logs its progress (every ``PROGRESS_EVERY`` seconds; here
    after each transaction): 300 000 rows took 25 s with nothing said until the end."""
    caplog.set_level(logging.INFO, logger="crontask.store")
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_ROWS", _TX_ROWS)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)
    rnd = random.Random(6)  # noqa: S311 - reproducible test data, not secrets
    records = _history(rnd, _TASK, 60) + _history(rnd, "ops/small", 5)
    assert isinstance(sql_store, SqlRunStore)
    sql_store.insert_many(records)
    limits = {_TASK: (1, 1), "ops/small": (1, 1)}

    # Until PROGRESS_EVERY has passed, nothing (never passed here, whatever the machine's load).
    monkeypatch.setattr(sql_retention, "PROGRESS_EVERY", math.inf)
    deleted = sql_store.prune(limits, None, T0)
    assert deleted > 5 * _TX_ROWS
    assert not [r for r in caplog.records if r.getMessage() == "history pruning under way"]

    sql_store.insert_many(_history(rnd, "ops/later", 60))
    monkeypatch.setattr(sql_retention, "PROGRESS_EVERY", 0.0)
    deleted = sql_store.prune({**limits, "ops/later": (1, 1)}, None, T0)
    said = [
        r.__dict__["fields"]
        for r in caplog.records
        if r.getMessage() == "history pruning under way"
    ]
    assert len(said) >= 3, said
    counts = [fields["deleted"] for fields in said]
    assert counts == sorted(counts)
    assert counts[-1] == deleted
    assert said[-1]["tasks_left"] == 0
