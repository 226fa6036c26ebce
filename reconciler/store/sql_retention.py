"""Retention on the SQL store: which finished runs go, in transactions of bounded size.

See ``RunStore.prune`` for the rules. The runs of a task are read newest first through
``ix_runs_task_scheduled`` and the reading stops as soon as every bucket is full, so a prune
costs the rows kept and deleted, not the table; a run is deleted whole (possibly over two
transactions, oldest attempts first) and never while an attempt of it is running.
"""

from __future__ import annotations

import dataclasses
import itertools
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
    # Built up front: a negative limit raises before anything is deleted.
    pending = [_TaskPrune(task, RetentionTally(*limits[task])) for task in sorted(limits)]
    pending.reverse()
    deleted = 0
    while pending:
        # At most _PRUNE_TX_ROWS deletions per transaction: several small tasks share one (one
        # commit per task is slow: on SQLite each commit of scattered deletes is a WAL
        # checkpoint), and a task far past its limits (a lowered limit, an imported store) goes
        # on over as many as it needs rather than holding the write lock for all of it.
        with transaction() as conn:
            room = _PRUNE_TX_ROWS
            while pending and room:
                room -= pending[-1].step(conn, room)
                if pending[-1].done:
                    pending.pop()
        deleted += _PRUNE_TX_ROWS - room
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


_Position = tuple[datetime, str]  # a run's place in NEWEST_FIRST: (scheduled_at, id)


def _place(table: sa.FromClause) -> sa.Tuple:
    return sa.tuple_(table.c.scheduled_at, table.c.id)


def _literal(position: _Position) -> sa.Tuple:
    at, run_id = position
    return sa.tuple_(sa.literal(at, UTCDateTime()), sa.literal(run_id, sa.String()))


@dataclasses.dataclass
class _TaskPrune:
    """One task's history limits applied over as many transactions as it takes; see
    ``RunStore.prune``.

    Reads the task's rows newest first through ``ix_runs_task_scheduled``, each transaction
    going on from where the last one stopped with the same tally. That is the answer of one
    long transaction: the runs deleted were counted in no bucket and the runs kept stay, so
    the runs still ahead are counted as they would have been. Once every bucket is full,
    everything older goes in range DELETEs on the same index. So the cost is the kept rows
    plus the deleted rows, not the table, however many transactions it takes.
    """

    task: str
    tally: RetentionTally
    walked: _Position | None = None  # the oldest run decided on (kept, or deleted whole)
    boundary: _Position | None = None  # the newest run of the "all older go" range
    done: bool = False

    def step(self, conn: Connection, room: int) -> int:
        """Delete up to ``room`` (> 0) rows of runs past the limits; return how many went, and
        set ``done`` once none are left."""
        deleted = planned = 0
        if self.boundary is None:
            doomed, partial, planned = self._walk(conn, room)
            deleted = _delete_runs(conn, doomed, partial)
            if self.boundary is None:  # the walk filled the room, or read the task's last run
                self.done = planned < room
                return deleted
        behind = self._delete_behind(conn, room - planned)
        self.done = behind < room - planned
        return deleted + behind

    def _walk(self, conn: Connection, room: int) -> tuple[list[str], tuple[str, int] | None, int]:
        """Read on from ``walked`` until every bucket is full (setting ``boundary``), the runs
        to delete fill ``room`` rows, or the runs end. Return the runs to delete whole; a run
        of which only the attempts up to a number go (the oldest, to fill the room: its latest
        attempt, which decides how the run is counted, stays until the next walk reads the run
        again); and how many rows those are."""
        stmt = sa.select(_c.id, _c.attempt, _c.scheduled_at, _c.status).where(_c.task == self.task)
        if self.walked is not None:
            stmt = stmt.where(_place(runs) < _literal(self.walked))
        stmt = stmt.order_by(*NEWEST_FIRST).execution_options(yield_per=1000)
        doomed: list[str] = []
        planned = 0
        result = conn.execute(stmt)
        try:
            for run_id, group in itertools.groupby(result, key=lambda row: row.id):
                attempts = list(group)  # latest attempt first
                position = (attempts[0].scheduled_at, run_id)
                if self.tally.exhausted:
                    self.boundary = position
                    break
                if not self.tally.keep([RunStatus(row.status) for row in attempts]):
                    if planned + len(attempts) > room:
                        return doomed, (run_id, attempts[planned - room].attempt), room
                    doomed.append(run_id)
                    planned += len(attempts)
                self.walked = position
                if planned == room:
                    break
        finally:
            result.close()
        return doomed, None, planned

    def _delete_behind(self, conn: Connection, limit: int) -> int:
        """Delete up to ``limit`` of the oldest finished rows at or behind ``boundary``.

        Oldest first, so that a run split over two transactions loses its oldest attempts
        first, and the boundary run goes last."""
        assert self.boundary is not None
        old = runs.alias("old")
        victims = (
            sa.select(old.c.id, old.c.attempt)
            .where(
                old.c.task == self.task,
                _place(old) <= _literal(self.boundary),
                _not_running_run(old),
            )
            .order_by(old.c.scheduled_at, old.c.id, old.c.attempt)
            .limit(limit)
        )
        return conn.execute(runs.delete().where(sa.tuple_(_c.id, _c.attempt).in_(victims))).rowcount


def _delete_runs(conn: Connection, doomed: list[str], partial: tuple[str, int] | None) -> int:
    """Delete the runs ``doomed`` whole and, of ``partial`` (run id, attempt), the attempts up
    to that one; none of them while it has a running attempt. Return how many rows went."""
    deleted = 0
    # By id alone, not also by task (the ids were read from the task's rows, and a run id is
    # unique across tasks): with ``task = ?`` SQLite's planner walks the whole task through an
    # index instead of looking each id up in the primary key (35 s for 100 000 rows).
    for start in range(0, len(doomed), _DELETE_CHUNK):
        chunk = doomed[start : start + _DELETE_CHUNK]
        deleted += conn.execute(runs.delete().where(_c.id.in_(chunk), _not_running_run())).rowcount
    if partial is not None:
        run_id, up_to = partial
        deleted += conn.execute(
            runs.delete().where(_c.id == run_id, _c.attempt <= up_to, _not_running_run())
        ).rowcount
    return deleted
