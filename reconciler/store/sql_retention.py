"""Retention on the SQL store: which finished runs go, in transactions of bounded size.

See ``RunStore.prune`` for the rules. The runs of a task are read newest first through
``ix_runs_task_scheduled`` and the reading stops as soon as every bucket is full, so a prune
costs the rows kept and deleted, not the table; a run is deleted whole and never while an
attempt of it is running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.core.runs import RunStatus
from reconciler.store.base import RetentionTally
from reconciler.store.sql_schema import NEWEST_FIRST, UTCDateTime, runs

# Rows deleted per transaction: SQLite holds its write lock until the commit, and claims wait
# behind it (20 000 held it for 1-2 s, and slots started that late during a first prune).
_PRUNE_TX_ROWS: Final = 2_000
_DELETE_CHUNK: Final = 500  # ids per DELETE ... IN (...): under SQLite's variable limit

_c = runs.c


def prune(
    transaction: Callable[[], AbstractContextManager[Connection]],
    limits: Mapping[str, tuple[int, int]],
    max_age: timedelta | None,
    now: datetime,
) -> int:
    """Apply ``limits`` (task -> the runs to keep of each outcome) and ``max_age``, each
    transaction from ``transaction()``; return how many rows went."""
    tallies = {task: RetentionTally(*limit) for task, limit in limits.items()}
    deleted = 0
    pending = sorted(tallies.items(), reverse=True)
    while pending:
        # Batch tasks into transactions of about _PRUNE_TX_ROWS deletions: one commit per
        # task is slow (on SQLite each commit of scattered deletes is a WAL checkpoint), one
        # commit for everything holds the write lock for as long as a huge first prune takes.
        with transaction() as conn:
            in_tx = 0
            while pending and in_tx < _PRUNE_TX_ROWS:
                task, tally = pending.pop()
                in_tx += _prune_task(conn, task, tally)
        deleted += in_tx
    if max_age is not None:
        while True:  # bounded transactions again: the first prune may delete a lot
            with transaction() as conn:
                batch = _delete_older_than(conn, now - max_age, _PRUNE_TX_ROWS)
            deleted += batch
            if batch < _PRUNE_TX_ROWS:
                break
    return deleted


def _not_running_run(table: sa.FromClause = runs) -> sa.ColumnElement[bool]:
    """Rows whose run has no running attempt (retention deletes runs whole, never running)."""
    running = runs.alias("running")
    # The running set is small and found through ix_runs_status_scheduled; uncorrelated on
    # purpose so it is computed once per statement, not per row.
    running_ids = (
        sa.select(running.c.id).where(running.c.status == RunStatus.RUNNING.value).correlate(None)
    )
    return sa.and_(table.c.status != RunStatus.RUNNING.value, table.c.id.not_in(running_ids))


def _delete_older_than(conn: Connection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest finished rows scheduled before ``cutoff`` (walking
    ``ix_runs_scheduled`` from its start); return how many went."""
    old = runs.alias("old")
    victims = (
        sa.select(old.c.id, old.c.attempt)
        .where(old.c.scheduled_at < cutoff, _not_running_run(old))
        .order_by(old.c.scheduled_at)
        .limit(limit)
    )
    return conn.execute(runs.delete().where(sa.tuple_(_c.id, _c.attempt).in_(victims))).rowcount


def _prune_task(conn: Connection, task: str, tally: RetentionTally) -> int:
    """Apply one task's history limits; see ``RunStore.prune``.

    Reads the task's rows newest first through ``ix_runs_task_scheduled`` and stops as soon as
    every bucket is full: everything older goes in one range DELETE on the same index. So the
    cost is the kept rows plus the deleted rows, not the table.
    """
    stmt = (
        sa.select(_c.id, _c.scheduled_at, _c.status)
        .where(_c.task == task)
        .order_by(*NEWEST_FIRST)
        .execution_options(yield_per=1000)
    )
    doomed: list[str] = []
    boundary: tuple[datetime, str] | None = None  # the newest run of the "all older go" range
    current: str | None = None
    statuses: list[RunStatus] = []
    result = conn.execute(stmt)
    try:
        for row in result:
            if row.id == current:
                statuses.append(RunStatus(row.status))
                continue
            if current is not None and not tally.keep(statuses):
                doomed.append(current)
            if tally.exhausted:
                boundary = (row.scheduled_at, row.id)
                current = None
                break
            current, statuses = row.id, [RunStatus(row.status)]
        if current is not None and not tally.keep(statuses):
            doomed.append(current)
    finally:
        result.close()
    deleted = 0
    for start in range(0, len(doomed), _DELETE_CHUNK):
        chunk = doomed[start : start + _DELETE_CHUNK]
        deleted += conn.execute(
            runs.delete().where(_c.task == task, _c.id.in_(chunk), _not_running_run())
        ).rowcount
    if boundary is not None:
        at, run_id = boundary
        deleted += conn.execute(
            runs.delete().where(
                _c.task == task,
                sa.tuple_(_c.scheduled_at, _c.id)
                <= sa.tuple_(sa.literal(at, UTCDateTime()), sa.literal(run_id, sa.String())),
                _not_running_run(),
            )
        ).rowcount
    return deleted
