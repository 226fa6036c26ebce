"""Retention on the SQL store: which finished runs go, in transactions of bounded size.

See ``RunStore.prune`` for the rules. The runs of a task are read newest first through
``ix_runs_task_scheduled`` and the reading stops as soon as every bucket is full, so a prune
costs the rows kept and deleted, not the table. A run is deleted whole, in one transaction,
and never while an attempt of it is running (a transaction may go past its bound by the
attempts of one run, bounded by the task's retry limit).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.core.runs import RunStatus, Trigger
from reconciler.store.base import RetentionTally
from reconciler.store.sql_schema import NEWEST_FIRST, UTCDateTime, runs
from reconciler.store.sql_summaries import of_scheduled_run

# Rows deleted per transaction: SQLite holds its write lock until the commit, and claims wait
# behind it (20 000 held it for 1-2 s, and slots started that late during a first prune).
_PRUNE_TX_ROWS: Final = 2_000
_PRUNE_TX_TASKS: Final = 200
# Between two of those transactions on SQLite: a claim that waits for the write lock retries
# every 100 ms once it has waited 300 ms (SQLite's busy handler), and a prune that took the
# lock again at once could keep it out for seconds (1.8 s measured at 200 000 deletions).
SQLITE_PRUNE_PAUSE: Final = 0.1
_DELETE_CHUNK: Final = 500  # ids per DELETE ... IN (...): under SQLite's variable limit

_c = runs.c


def prune(
    transaction: Callable[[], AbstractContextManager[Connection]],
    limits: Mapping[str, tuple[int, int]],
    max_age: timedelta | None,
    now: datetime,
    *,
    pause: float = 0.0,
) -> int:
    """Apply ``limits`` (task -> the runs to keep of each outcome) and ``max_age``, each
    transaction from ``transaction()`` and ``pause`` seconds after each but the last; return
    how many rows went."""
    # Built up front: a negative limit raises before anything is deleted.
    pending = [_TaskPrune(task, RetentionTally(*limits[task])) for task in sorted(limits)]
    pending.reverse()
    deleted = 0
    first = True
    while pending:
        if not first:
            time.sleep(pause)
        first = False
        # About _PRUNE_TX_ROWS deletions per transaction: several small tasks share one (one
        # commit per task is slow: on SQLite each commit of scattered deletes is a WAL
        # checkpoint), and a task far past its limits (a lowered limit, an imported store) goes
        # on over as many as it needs rather than holding the write lock for all of it.
        # And at most _PRUNE_TX_TASKS tasks: 10 000 tasks within their limits delete nothing,
        # and walking them all in one transaction held the write lock for a second.
        with transaction() as conn:
            in_tx = tasks = 0
            while pending and in_tx < _PRUNE_TX_ROWS and tasks < _PRUNE_TX_TASKS:
                in_tx += pending[-1].step(conn, _PRUNE_TX_ROWS - in_tx)
                tasks += 1
                if pending[-1].done:
                    pending.pop()
        deleted += in_tx
    if max_age is not None:
        while True:  # bounded transactions again: the first prune may delete a lot
            if not first:
                time.sleep(pause)
            first = False
            with transaction() as conn:
                batch, more = _delete_older_than(conn, now - max_age, _PRUNE_TX_ROWS)
            deleted += batch
            if not more:
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


def _delete_oldest(
    conn: Connection, victims: sa.Select[tuple[str]], limit: int
) -> tuple[int, bool]:
    """Delete the runs of the first ``limit`` rows ``victims`` selects (their run ids, oldest
    first, a run's attempts together), whole: the last run is left for the next call when it
    may have attempts past the limit, unless it is the only one. Return how many rows went,
    and whether any may be left."""
    found = [str(row[0]) for row in conn.execute(victims.limit(limit))]
    ids = list(dict.fromkeys(found))
    more = len(found) == limit
    if more and len(ids) > 1:
        ids.pop()
    return _delete_runs(conn, ids), more


def _delete_older_than(conn: Connection, cutoff: datetime, limit: int) -> tuple[int, bool]:
    """Delete the oldest finished runs scheduled before ``cutoff``, about ``limit`` rows
    (walking ``ix_runs_scheduled`` from its start); see :func:`_delete_oldest`. A task's
    newest scheduled run stays however old (``RunStore.last_slots``): a ``@monthly`` task's
    last run is older than the default 30 days on the eve of its next slot, and without it a
    restart across that slot would neither run it nor record it."""
    old = runs.alias("old")
    other = runs.alias("other")
    scheduled = of_scheduled_run(other)
    # The task's newest scheduled run is the one with an attempt of a scheduled run and no
    # scheduled run after it: one seek in ix_runs_task_scheduled and one in the primary key
    # (and one more for a retry, to read its run's first attempt).
    superseded = (
        sa.select(other.c.id)
        .where(other.c.task == old.c.task, other.c.scheduled_at > old.c.scheduled_at, scheduled)
        .exists()
    )
    manual_only = ~sa.select(other.c.id).where(other.c.id == old.c.id, scheduled).exists()
    victims = (
        sa.select(old.c.id)
        .where(
            old.c.scheduled_at < cutoff,
            _not_running_run(old),
            sa.or_(manual_only, superseded),
        )
        .order_by(old.c.scheduled_at, old.c.id, old.c.attempt)
    )
    return _delete_oldest(conn, victims, limit)


def _delete_runs(conn: Connection, doomed: Sequence[str]) -> int:
    """Delete the runs ``doomed`` whole, none while it has a running attempt; how many rows
    went."""
    deleted = 0
    # By id alone, not also by task (a run id is unique across tasks: it holds the task's
    # key): with ``task = ?`` SQLite's planner walks the whole task through an index instead
    # of looking each id up in the primary key (35 s for 100 000 rows).
    for start in range(0, len(doomed), _DELETE_CHUNK):
        chunk = doomed[start : start + _DELETE_CHUNK]
        deleted += conn.execute(runs.delete().where(_c.id.in_(chunk), _not_running_run())).rowcount
    return deleted


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
    everything older goes, oldest first, through the same index. So the cost is the kept rows
    plus the deleted rows, not the table, however many transactions it takes.
    """

    task: str
    tally: RetentionTally
    walked: _Position | None = None  # the oldest run decided on (kept, or deleted)
    boundary: _Position | None = None  # the newest run of the "all older go" range
    done: bool = False

    def step(self, conn: Connection, room: int) -> int:
        """Delete runs past the limits, about ``room`` (> 0) rows of them; return how many
        went, and set ``done`` once none are left."""
        deleted = 0
        if self.boundary is None:
            deleted = _delete_runs(conn, self._walk(conn, room))
            if self.boundary is None or deleted >= room:
                return deleted
        behind, more = _delete_oldest(conn, self._behind(), room - deleted)
        self.done = not more
        return deleted + behind

    def _walk(self, conn: Connection, room: int) -> list[str]:
        """The runs to delete, read on from ``walked`` until every bucket is full (setting
        ``boundary``), they fill ``room`` rows (the first run whole, whatever its size; a
        later one that would not fit is left to the next walk), or the runs end (``done``)."""
        stmt = sa.select(_c.id, _c.attempt, _c.scheduled_at, _c.status, _c.trigger)
        stmt = stmt.where(_c.task == self.task)
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
                    return doomed
                # keep() counts a run only when it keeps it: asking again is harmless.
                statuses = [RunStatus(row.status) for row in attempts]
                # A run's kind is its first attempt's: a manual run's retries record ``retry``.
                manual = any(
                    row.attempt == 1 and row.trigger == Trigger.MANUAL.value for row in attempts
                )
                anchor = not manual and any(row.trigger != Trigger.MANUAL.value for row in attempts)
                if not self.tally.keep(statuses, anchor=anchor):
                    if planned and planned + len(attempts) > room:
                        return doomed
                    doomed.append(run_id)
                    planned += len(attempts)
                self.walked = position
                if planned >= room:
                    return doomed
        finally:
            result.close()
        self.done = True
        return doomed

    def _behind(self) -> sa.Select[tuple[str]]:
        """The finished rows at or behind ``boundary``, oldest first (a run's together)."""
        assert self.boundary is not None
        old = runs.alias("old")
        return (
            sa.select(old.c.id)
            .where(
                old.c.task == self.task,
                _place(old) <= _literal(self.boundary),
                _not_running_run(old),
            )
            .order_by(old.c.scheduled_at, old.c.id, old.c.attempt)
        )
