"""A prune transaction is bounded by the rows it reads, not only by those it deletes.

SQLite holds its write lock from the first read of a prune transaction to its commit, and
every claim (a slot about to start) waits behind it. Within their limits, 200 tasks of 2 000
finished runs each deleted nothing, yet their 400 000 kept rows were read in one transaction:
the lock was held 7.8 s and every claim meanwhile failed as a store outage. And the max age
read every task's old mark of missed slots again in each of its transactions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from reconciler.core.runs import RunStatus, Trigger
from reconciler.store import RunStore, sql_retention
from reconciler.store.sql import SqlRunStore

from ._records import T0, everything, rec


class _Counted:
    """A connection that counts the rows taken from each result, for one transaction."""

    def __init__(self, conn: Connection, read: list[int]) -> None:
        self._conn = conn
        self._read = read
        self.dialect = conn.dialect

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return _CountedResult(self._conn.execute(*args, **kwargs), self._read)

    def exec_driver_sql(self, *args: Any, **kwargs: Any) -> Any:
        return self._conn.exec_driver_sql(*args, **kwargs)  # settings: no rows to count


class _CountedResult:
    def __init__(self, result: Any, read: list[int]) -> None:
        self._result = result
        self._read = read

    def __iter__(self) -> Iterator[Any]:
        for row in self._result:
            self._read[-1] += 1
            yield row

    def all(self) -> list[Any]:
        rows: list[Any] = self._result.all()
        self._read[-1] += len(rows)
        return rows

    def first(self) -> Any:
        row = self._result.first()
        self._read[-1] += row is not None
        return row

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)


@contextlib.contextmanager
def _rows_read(store: SqlRunStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The rows each write transaction of ``store`` read, in order (the list fills as they
    run)."""
    per_tx: list[int] = []
    real = store._tx

    @contextlib.contextmanager
    def transaction(**kwargs: Any) -> Iterator[Any]:
        per_tx.append(0)
        with real(**kwargs) as conn:
            yield _Counted(conn, per_tx)

    with monkeypatch.context() as patch:
        patch.setattr(store, "_tx", transaction)
        yield per_tx


def test_kept_rows_are_read_a_few_at_a_time(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing to delete, every run within the limits: the rows are still read in small
    transactions, each going on where the last one stopped."""
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_READS", 25)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)
    assert isinstance(sql_store, SqlRunStore)
    tasks = [f"ops/t{i}" for i in range(10)]
    statuses = (RunStatus.SUCCEEDED, RunStatus.FAILED)
    records = [rec(task, m, statuses[m % 2]) for task in tasks for m in range(20)]
    sql_store.insert_many(records)

    with _rows_read(sql_store, monkeypatch) as per_tx:
        assert sql_store.prune({task: (100, 100) for task in tasks}, None, T0) == 0

    # And the row that says the last run read has ended.
    assert max(per_tx) <= 25 + 1, per_tx
    assert sum(per_tx) <= len(records) + len(per_tx), per_tx  # each row read once
    assert len(everything(sql_store)) == len(records)


def test_a_retried_run_is_read_whole_within_the_bound(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction may pass the bound by the attempts of one run (read whole, as a run is
    decided on whole), and the limits still apply as in one long transaction."""
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_READS", 4)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)
    assert isinstance(sql_store, SqlRunStore)
    task = "ops/flaky"
    for m in range(12):
        sql_store.claim(rec(task, m, RunStatus.FAILED))
        sql_store.claim(rec(task, m, RunStatus.FAILED, attempt=2, trigger=Trigger.RETRY))
        sql_store.claim(rec(task, m, RunStatus.SUCCEEDED, attempt=3, trigger=Trigger.RETRY))

    with _rows_read(sql_store, monkeypatch) as per_tx:
        assert sql_store.prune({task: (5, 0)}, None, T0) == 7 * 3

    # A run read whole past the bound, and the row that says it has ended.
    assert max(per_tx) <= 4 + 3, per_tx
    assert len(per_tx) > 3
    kept = sorted({r.scheduled_at for r in everything(sql_store)})
    assert kept == [T0 + timedelta(minutes=m) for m in range(7, 12)]


@pytest.mark.parametrize("victims", [0, 20])
def test_old_marks_of_missed_slots_are_read_once_in_small_transactions(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch, victims: int
) -> None:
    """Each task's newest slot stays however old (its mark of missed slots): 60 of them, and
    old manual runs among them. The max age reads them in windows of the index, each
    transaction after the last one's, not all of them again in every transaction."""
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_ROWS", 7)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)
    assert isinstance(sql_store, SqlRunStore)
    marks = [rec(f"ops/monthly-{i:02d}", 3 * i) for i in range(60)]
    manual = [rec("ops/by-hand", 3 * i + 1, trigger=Trigger.MANUAL) for i in range(victims)]
    sql_store.insert_many(marks + manual)

    with _rows_read(sql_store, monkeypatch) as per_tx:
        deleted = sql_store.prune({}, timedelta(days=1), T0 + timedelta(days=2))

    # Of the manual runs, the newest stays: its task's newest run that tells how it did.
    assert deleted == max(victims - 1, 0)
    # A window of 7 rows of the index, and the row that says where it ends.
    assert max(per_tx) <= 7 + 1, per_tx
    assert len(per_tx) >= (len(marks) + victims) // 7
    assert sum(per_tx) <= len(marks) + victims + len(per_tx), per_tx  # each row once
    assert sorted(map(repr, everything(sql_store))) == sorted(map(repr, marks + manual[-1:]))
