"""Retention never takes a run that is not over, on every store.

A run waiting for its retry (a backoff of up to a day) has no attempt ``running``: the store
alone cannot tell it from a run that ended. Pruned, its retry recorded attempt 2 of a run
without attempt 1, a lone ``retry`` that the store then took for the task's newest slot: the
slots missed before it were never caught up, and the mark it stood in for was deleted. So the
caller names its runs that are not over (``busy``), and a lone ``retry`` (left by an older
crontask, or by another replica's waiting retry pruned by age) is no run of a slot.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from reconciler.core.runs import RunStatus, Trigger, run_id
from reconciler.store import RunStore, sql_retention
from reconciler.store.sql import SqlRunStore

from ._records import T0, everything, rec

TASK = "ops/report"
NOW = T0 + timedelta(days=2)


def _minutes(store: RunStore) -> set[tuple[int, int]]:
    """(minute after T0, attempt) of every record left."""
    return {
        (int((r.scheduled_at - T0).total_seconds() // 60), r.attempt) for r in everything(store)
    }


@pytest.mark.parametrize(
    ("limits", "max_age", "left"),
    [
        # The success bucket never fills: each run is decided on as it is read.
        pytest.param({TASK: (5, 0)}, None, {(0, 1), (1, 1), (3, 1)}, id="walked"),
        # Every bucket full after the newest slot: the older runs go as a range.
        pytest.param({TASK: (0, 0)}, None, {(1, 1), (3, 1)}, id="behind-the-kept"),
        pytest.param({}, timedelta(days=1), {(1, 1), (3, 1)}, id="max-age"),
    ],
)
def test_a_run_waiting_for_its_retry_is_not_pruned(
    store: RunStore,
    limits: dict[str, tuple[int, int]],
    max_age: timedelta | None,
    left: set[tuple[int, int]],
) -> None:
    store.claim(rec(TASK, 0))  # an older slot
    # A manual run whose first attempt failed: its retry is due in an hour.
    store.claim(rec(TASK, 1, RunStatus.FAILED, trigger=Trigger.MANUAL))
    store.claim(rec(TASK, 2, RunStatus.FAILED, trigger=Trigger.MANUAL))  # over: it may go
    store.claim(rec(TASK, 3))  # the newest slot: the mark of missed slots
    waiting = run_id(TASK, T0 + timedelta(minutes=1))

    deleted = store.prune(limits, max_age, NOW, busy={waiting})

    assert _minutes(store) == left
    assert deleted == 4 - len(left)
    # The retry comes: its run is whole.
    store.claim(rec(TASK, 1, RunStatus.SUCCEEDED, attempt=2, trigger=Trigger.RETRY))
    assert [a.attempt for a in store.attempts(waiting)] == [1, 2]
    assert store.last_slots() == {TASK: T0 + timedelta(minutes=3)}


@pytest.mark.parametrize(
    ("limits", "max_age"),
    [
        pytest.param({TASK: (0, 0)}, None, id="limits"),
        pytest.param({}, timedelta(days=1), id="max-age"),
    ],
)
def test_a_lone_retry_is_no_slot(
    store: RunStore, limits: dict[str, tuple[int, int]], max_age: timedelta | None
) -> None:
    """A retry whose first attempt is gone says nothing of its run's kind: taken for a slot it
    would hide the slots missed before it, and stand in for the mark that retention keeps.
    Abandoned (skipped): one that ended would stay as the task's newest run that tells how it
    did (``RetentionTally``), whatever its kind."""
    store.claim(rec(TASK, 0))  # the last slot that ran
    store.claim(rec(TASK, 10, RunStatus.SKIPPED, attempt=2, trigger=Trigger.RETRY))
    assert store.last_slots() == {TASK: T0}

    assert store.prune(limits, max_age, NOW) == 1

    assert _minutes(store) == {(0, 1)}
    assert store.last_slots() == {TASK: T0}


def test_waiting_runs_that_fill_a_transaction_do_not_stop_the_prune(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs kept behind the range's edge are passed over, not read again by every following
    transaction: more of them than a transaction deletes would stall the prune forever."""
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_ROWS", 2)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)
    assert isinstance(sql_store, SqlRunStore)
    busy: set[str] = set()
    for minute in range(6):  # the oldest three wait for their retry
        sql_store.claim(rec(TASK, minute, RunStatus.FAILED, trigger=Trigger.MANUAL))
        if minute < 3:
            busy.add(run_id(TASK, T0 + timedelta(minutes=minute)))
    sql_store.claim(rec(TASK, 10))  # the newest slot
    transactions = [0]
    real = sql_store._tx

    @contextlib.contextmanager
    def transaction(**kwargs: Any) -> Iterator[Connection]:
        transactions[0] += 1
        assert transactions[0] < 20, "the prune does not end"
        with real(**kwargs) as conn:
            yield conn

    monkeypatch.setattr(sql_store, "_tx", transaction)

    assert sql_store.prune({TASK: (0, 0)}, None, NOW, busy=busy) == 3
    assert _minutes(sql_store) == {(0, 1), (1, 1), (2, 1), (10, 1)}
