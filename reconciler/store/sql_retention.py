"""Retention on the SQL store: which finished runs go, in transactions of bounded size.

See ``RunStore.prune`` for the rules. The runs of a task are read newest first through
``ix_runs_task_scheduled`` and the reading stops as soon as every bucket is full, so a prune
costs the rows kept and deleted, not the table. A run is deleted whole, in one transaction,
and never while an attempt of it is running (a transaction may go past its bound by the
attempts of one run, bounded by the task's retry limit), nor while the caller says it is not
over (``busy``: waiting for its retry). The max age also spares a run whose retry may still
come, whoever's it is (``retry_window.retry_may_follow``): ``busy`` names only the pruning process's
own runs, and a replica's prune (or another crontask's on the same store) deleted the first
attempt of a run that waited for its retry elsewhere.

A transaction is bounded by the rows it reads as well as by those it deletes: SQLite holds its
write lock while it reads, and 200 tasks of 2 000 runs each, within limits of 1 000, held it
7.8 s without deleting a row, every claim meanwhile failing as a store outage. Each transaction
goes on where the last one stopped, so what was read once is not read again.

Whatever the limits, and by age while the task is declared (as its mark of missed slots), each
task keeps its newest run that says how it did (``base.tells``: one succeeded or failed, not a
skip nor a shutdown's interruption) and its last success (the run of its succeeded attempt
that finished last, ``base.last_success_order``), two runs a task at most, often one: a
restart, or a replica taking the task over, reads its state from them
(``base.RetentionTally``). By the limits, the newest run that tells is found on the walk
newest first at no extra read, and the last success by one seek at the end of the task's
succeeded range of ``ix_runs_task_status_finished`` before the walk (a task that never
succeeded is walked to its end: the rows it keeps and deletes, not the table). By age, a row
tested for either pays a seek or two (``last_word``), never a read of the task's newer
history (a task failing for long, its success past the max age, made every prune read all of
its failures, its write lock held 0.8 s), nor one of the table.

A run with an attempt this version cannot read (``sql_rows.readable``: a status or trigger a
newer crontask wrote) is kept and counted in no bucket, as a busy one: what it is, retention
cannot tell, and raising on it stopped every prune for good.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Container, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.core.runs import RunStatus
from reconciler.store.base import RetentionTally, slot_run, tells
from reconciler.store.retry_window import retry_may_follow
from reconciler.store.sql_retention_words import last_word, mark
from reconciler.store.sql_retention_words import place as _place
from reconciler.store.sql_rows import readable
from reconciler.store.sql_schema import NEWEST_FIRST, UTCDateTime, runs

# Rows deleted per transaction: SQLite holds its write lock until the commit, and claims wait
# behind it (20 000 held it for 1-2 s, and slots started that late during a first prune).
_PRUNE_TX_ROWS: Final = 2_000
# Rows read per transaction, kept or deleted: reading 400 000 kept rows in one held the lock
# 7.8 s (20-30 us a row, the tally included), so this is 100-150 ms.
_PRUNE_TX_READS: Final = 5_000
_PRUNE_TX_TASKS: Final = 200
# Between two of those transactions on SQLite: a claim that waits for the write lock retries
# every 100 ms once it has waited 300 ms (SQLite's busy handler), and a prune that took the
# lock again at once could keep it out for seconds (1.8 s measured at 200 000 deletions).
SQLITE_PRUNE_PAUSE: Final = 0.1
_DELETE_CHUNK: Final = 500  # ids per DELETE ... IN (...): under SQLite's variable limit
# A long prune says how far it is every so often: 300 000 rows took 25 s without a word,
# "history pruned" only at the end.
PROGRESS_EVERY: Final = 10.0

log = logging.getLogger("crontask.store")

_c = runs.c

_Position = tuple[datetime, str]  # a run's place in NEWEST_FIRST: (scheduled_at, id)
_Rows = Sequence[sa.Row[*tuple[Any, ...]]]  # rows of any columns


@dataclasses.dataclass(frozen=True)
class Kept:
    """What the caller keeps out of retention's reach (see ``RunStore.prune``): ``busy``, its
    runs not over though none of their attempts runs (asked only ``in``, after the run's rows
    were read); ``declared``, the tasks whose newest run of a slot stays however old (None:
    every task's); ``owner``, the instance that prunes, when the store may be shared with
    crontasks that declare other tasks (None: ``declared`` is every crontask's)."""

    busy: Container[str] = ()
    declared: frozenset[str] | None = None
    owner: str | None = None
    retrying: frozenset[str] | None = frozenset()  # declared with a retry limit (None: any)

    def may_retry(self, task: str, recorded_by: str | None) -> bool:
        """Whether a failed run of ``task`` may wait for a retry, as the caller knows the task:
        declared with a retry limit, or recorded by another crontask sharing the store (its
        policy is not known here). A task without retries never waits: its failed runs go by
        age as any (a task failing every second kept a day of them past a short max age)."""
        if self.retrying is None or task in self.retrying:
            return True
        return self.owner is not None and recorded_by not in (None, self.owner)

    def keeps_mark(self, task: str, recorded_by: str | None) -> bool:
        """Whether the mark of ``task``, an attempt of which ``recorded_by`` recorded, stays
        whatever its age."""
        if self.declared is None or task in self.declared:
            return True
        # Not declared here, but recorded by another crontask: one that shares the store
        # without --ha declares tasks of its own, and it may be down now, to count from this
        # mark the slots it missed when it starts. An attempt without an owner (schema 0001)
        # names nobody: it goes, as before.
        return self.owner is not None and recorded_by not in (None, self.owner)


@dataclasses.dataclass
class _Budget:
    """What one transaction may still do: rows to delete, and rows to read (kept or deleted:
    SQLite holds its write lock while it reads too)."""

    deletes: int
    reads: int
    deleted: int = 0

    def spend(self, read: int, deleted: int) -> None:
        self.reads -= read
        self.deletes -= deleted
        self.deleted += deleted

    @property
    def spent(self) -> bool:
        return self.deletes <= 0 or self.reads <= 0


def prune(
    transaction: Callable[[], AbstractContextManager[Connection]],
    limits: Mapping[str, tuple[int, int]],
    max_age: timedelta | None,
    now: datetime,
    kept: Kept,
    *,
    pause: float = 0.0,
) -> int:
    """Apply ``limits`` (task -> the runs to keep of each outcome) and ``max_age``, sparing
    what ``kept`` keeps, each transaction from ``transaction()`` and ``pause`` seconds after
    each but the last; return how many rows went."""
    # Built up front: a negative limit raises before anything is deleted.
    pending = [_TaskPrune(task, RetentionTally(*limits[task])) for task in sorted(limits)]
    pending.reverse()
    aged = None if max_age is None else _AgedPrune(now - max_age, now)
    deleted = 0
    first = True
    said = time.monotonic()
    while pending or (aged is not None and not aged.done):
        if not first:
            time.sleep(pause)
        first = False
        # Several small tasks share a transaction (one commit per task is slow: on SQLite each
        # commit of scattered deletes is a WAL checkpoint), and a task far past its limits (a
        # lowered limit, an imported store) goes on over as many as it needs rather than
        # holding the write lock for all of it. And at most _PRUNE_TX_TASKS tasks: 10 000
        # tasks without a run read nothing, yet walking them all in one transaction held the
        # write lock for a second.
        budget = _Budget(_PRUNE_TX_ROWS, _PRUNE_TX_READS)
        with transaction() as conn:
            if pending:
                tasks = 0
                while pending and not budget.spent and tasks < _PRUNE_TX_TASKS:
                    pending[-1].step(conn, budget, kept)
                    tasks += 1
                    if pending[-1].done:
                        pending.pop()
            elif aged is not None:  # bounded transactions again: the first may delete a lot
                aged.step(conn, budget, kept)
        deleted += budget.deleted
        if time.monotonic() - said >= PROGRESS_EVERY:
            said = time.monotonic()
            fields = {"deleted": deleted, "tasks_left": len(pending)}
            log.info("history pruning under way", extra={"fields": fields})
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


def _literal(position: _Position) -> sa.Tuple:
    at, run_id = position
    return sa.tuple_(sa.literal(at, UTCDateTime()), sa.literal(run_id, sa.String()))


def _oldest_first(table: sa.FromClause) -> tuple[sa.ColumnElement[Any], ...]:
    return (table.c.scheduled_at, table.c.id, table.c.attempt)


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
    last_success: str | None = None  # its run's id (read before the walk starts)
    walked: _Position | None = None  # the oldest run decided on (kept, or deleted)
    boundary: _Position | None = None  # the newest run of the "all older go" range
    behind: _Position | None = None  # in that range, the newest run decided on
    done: bool = False

    def step(self, conn: Connection, budget: _Budget, kept: Kept) -> None:
        """Delete runs past the limits, within ``budget`` (not spent: at least one run is
        decided on); set ``done`` once none are left."""
        if self.walked is None and self.boundary is None:  # before the walk
            self.last_success = _last_success(conn, self.task)
            self.tally.expect_success(self.last_success is not None)
        if self.boundary is None:
            doomed, read = self._walk(conn, budget, kept)
            budget.spend(read, _delete_runs(conn, doomed))
            if self.boundary is None or budget.spent:
                return
        assert self.boundary is not None
        old = runs.alias("old")
        behind = [old.c.task == self.task, _place(old) <= _literal(self.boundary)]
        if self.behind is not None:  # what was decided on is not read again (a busy run)
            behind.append(_place(old) > _literal(self.behind))
        victims = sa.select(old.c.id, old.c.scheduled_at, old.c.status, old.c.trigger)
        victims = victims.where(*behind, _not_running_run(old))
        limit = min(budget.deletes, budget.reads)
        found = conn.execute(victims.order_by(*_oldest_first(old)).limit(limit)).all()
        more = len(found) == limit
        places = list(dict.fromkeys((row.scheduled_at, row.id) for row in found))
        if more and len(places) > 1:
            places.pop()  # it may have attempts past the limit: whole, in the next call
        spared = _Spared(kept.busy, found)
        doomed = [run_id for _, run_id in places if run_id not in spared]
        budget.spend(len(found), _delete_runs(conn, doomed))
        self.behind = places[-1] if places else self.behind
        self.done = not more

    def _walk(self, conn: Connection, budget: _Budget, kept: Kept) -> tuple[list[str], int]:
        """The runs to delete and the rows read, read on from ``walked`` until every bucket
        is full (setting ``boundary``), the runs to delete fill ``budget.deletes`` rows (the
        first run whole, whatever its size; a later one that would not fit is left to the
        next walk), the rows read fill ``budget.reads``, or the runs end (``done``)."""
        columns = (_c.id, _c.attempt, _c.scheduled_at, _c.status, _c.trigger, _c.reason)
        stmt = sa.select(*columns).where(_c.task == self.task)
        if self.walked is not None:
            stmt = stmt.where(_place(runs) < _literal(self.walked))
        stmt = stmt.order_by(*NEWEST_FIRST).execution_options(yield_per=1000)
        doomed: list[str] = []
        planned = read = 0
        result = conn.execute(stmt)
        try:
            for run_id, group in itertools.groupby(result, key=lambda row: row.id):
                latest = next(group)
                position = (latest.scheduled_at, run_id)
                if self.tally.exhausted:
                    self.boundary = position
                    return doomed, read
                attempts = [latest, *group]  # noqa: B031 - the rows after next(group)
                read += len(attempts)
                won = run_id == self.last_success
                if self._goes(attempts, busy=run_id in kept.busy, last_success=won):
                    if planned and planned + len(attempts) > budget.deletes:
                        return doomed, read
                    doomed.append(run_id)
                    planned += len(attempts)
                self.walked = position
                if planned >= budget.deletes or read >= budget.reads:
                    return doomed, read
        finally:
            result.close()
        self.done = True
        return doomed, read

    def _goes(self, attempts: _Rows, *, busy: bool, last_success: bool) -> bool:
        """Whether the run of ``attempts`` (latest first) goes; see the module docstring for
        one with an attempt this version cannot read."""
        if not all([readable(row.status, row.trigger) for row in attempts]):  # each warned of
            return False
        # keep() counts a run only when it keeps it: asking again is harmless.
        statuses = [RunStatus(row.status) for row in attempts]
        anchor = slot_run((row.attempt, row.trigger) for row in attempts)
        told = tells(zip(statuses, [row.reason for row in attempts], strict=True))
        return not self.tally.keep(
            statuses, anchor=anchor, busy=busy, tells=told, last_success=last_success
        )


@dataclasses.dataclass
class _AgedPrune:
    """The runs scheduled before ``cutoff``, deleted oldest first through ``ix_runs_scheduled``
    a window of rows at a time, each transaction going on after the last one's window: what
    stays (each task's mark of missed slots, however old; a run running or busy) is read once
    in a prune, not once in each of its transactions.

    A task's newest run of a slot stays however old while the task is declared
    (``RunStore.last_slots``): a ``@monthly`` task's last run is older than the default 30 days
    on the eve of its next slot, and without it a restart across that slot would neither run it
    nor record it. A task no longer declared has no slot to come: its mark goes by age, unless
    an attempt of it is another instance's (``Kept.keeps_mark``).

    A run whose retry may still come (``retry_may_follow``: its latest attempt failed within
    a day or so of ``now``, of a task that retries: ``Kept.may_retry``) stays too, whoever's it
    is: ``Kept.busy`` names only this process's runs waiting for their retry, not another
    replica's, nor another crontask's.

    The task's newest run that tells how it did and its last success (``last_word``) stay
    as its mark does."""

    cutoff: datetime
    now: datetime
    after: _Position | None = None  # the newest run decided on
    done: bool = False

    def step(self, conn: Connection, budget: _Budget, kept: Kept) -> None:
        _custom_plan(conn)
        rows = min(budget.deletes, budget.reads)
        old = runs.alias("old")
        window = [old.c.scheduled_at < self.cutoff]
        if self.after is not None:
            window.append(_place(old) > _literal(self.after))
        # The window's last run: one read of ``rows`` entries of the index, no more.
        edge = sa.select(old.c.scheduled_at, old.c.id).where(*window)
        last = conn.execute(edge.order_by(*_oldest_first(old)).offset(rows - 1).limit(1)).first()
        if last is not None:  # all of its attempts, whatever side of the edge they are
            window.append(_place(old) <= _literal((last.scheduled_at, last.id)))
        columns = (old.c.id, old.c.task, old.c.status, old.c.trigger, old.c.owner)
        # When the attempt ended: one datetime to read a row, not two.
        ended = sa.func.coalesce(old.c.finished_at, old.c.started_at, type_=UTCDateTime())
        ends = (old.c.attempt, old.c.reason, ended.label("ended"))
        stays = (mark(old).label("mark"), last_word(old).label("word"))
        found = conn.execute(
            sa.select(*columns, *ends, *stays)
            .where(*window, _not_running_run(old))
            .order_by(*_oldest_first(old))
        ).all()
        spared = _Spared(kept.busy, found)
        # A run is kept whole if any attempt keeps it, and then if any attempt is of an owner
        # whose marks stay (all of a run's rows are in the window).
        stay = {row.id for row in found if row.mark or row.word}
        marks = {row.id for row in found if kept.keeps_mark(row.task, row.owner)} & stay
        waiting = _retry_may_follow(found, self.now, kept)
        doomed = dict.fromkeys(
            row.id
            for row in found
            if row.id not in spared and row.id not in marks and row.id not in waiting
        )
        budget.spend(len(found), _delete_runs(conn, list(doomed)))
        self.done = last is None
        self.after = None if last is None else (last.scheduled_at, last.id)


def _custom_plan(conn: Connection) -> None:
    """On PostgreSQL, this transaction's statements planned for their values, without JIT.
    psycopg prepares a statement run five times, and PostgreSQL then plans it once for any
    values: the window's generic plan took 1.5-6 s a transaction where its own took 10 ms
    (200 000 failed runs kept for their retry, read by every prune), and its estimate (the
    ``later`` EXISTS, a scan for any task) made each statement compile with JIT, 0.2-0.7 s."""
    if conn.dialect.name != "postgresql":
        return
    version = conn.dialect.server_version_info or (0,)
    if version >= (11,):  # older servers have neither setting (an error would stop the prune)
        conn.exec_driver_sql("SET LOCAL jit = off")
    if version >= (12,):
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


def _retry_may_follow(found: _Rows, now: datetime, kept: Kept) -> set[str]:
    """The runs of ``found`` (all their attempts, oldest first) whose retry may still come,
    told by their task (``Kept.may_retry``) and their latest attempt (``retry_may_follow``)."""
    latest = {row.id: row for row in found}  # the last row of a run is its latest attempt
    return {
        run_id
        for run_id, row in latest.items()
        if kept.may_retry(row.task, row.owner)
        and retry_may_follow(row.status, row.reason, row.attempt, row.ended, now)
    }


class _Spared:
    """The runs of ``found`` (rows with their id, status and trigger) that stay whatever their
    age: ``busy`` ones, and those with an attempt this version cannot read."""

    def __init__(self, busy: Container[str], found: _Rows) -> None:
        self._busy = busy
        self._unread = {row.id for row in found if not readable(row.status, row.trigger)}

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._unread or run_id in self._busy


def _last_success(conn: Connection, task: str) -> str | None:
    """The run of ``task``'s last success (``base.last_success_order``), or None: a seek at
    the end of its succeeded range of ``ix_runs_task_status_finished``. By ``finished_at``
    first: by slot, SQLite without statistics walked ``ix_runs_status_scheduled``, every task's."""
    won = sa.and_(
        _c.task == task, _c.status == RunStatus.SUCCEEDED.value, _c.finished_at.is_not(None)
    )
    last = sa.select(_c.id).where(won).order_by(_c.finished_at.desc(), *NEWEST_FIRST).limit(1)
    found: str | None = conn.execute(last).scalar()
    return found
