"""Reads of the SQL store that summarise each task's history, for start-up and for a task that
comes to this process: the newest slot (missed runs), and the newest end of a success and of a
failure and the duration of the last attempt whose end is known, not one whose process died
(metrics, the status page's ok/failing filter); and each task's newest record (``latest``, and
``latest_many``: the task list's last run of the tasks another replica runs). A query answers
for many tasks at once, never a query per task; tasks named are each read at the end of an
index range, so the cost per task is flat however long its history. A row of a status this
version does not know is in no outcome (each reads a status it knows), one of a trigger it does
not know is of no slot (:func:`of_scheduled_run`), and no task's newest record
(``sql_rows.READABLE``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from reconciler.core.runs import PROCESS_DIED, LastOutcomes, RunRecord, RunStatus, Trigger
from reconciler.core.status import SHUTDOWN_REASON
from reconciler.store import sql_rows
from reconciler.store.base import FAILED_STATUSES
from reconciler.store.records import utc
from reconciler.store.sql_schema import NEWEST_FIRST, runs

_c = runs.c
# The triggers of a run of a slot, as this version knows them: an unknown one (a newer
# crontask's, sharing the database) may name a moment as a manual run does, which would hide
# the slots missed before it.
_SLOT_TRIGGERS: Final = tuple(t.value for t in Trigger if t is not Trigger.MANUAL)


def of_scheduled_run(table: sa.FromClause = runs, *, seek: bool = False) -> sa.ColumnElement[bool]:
    """Rows of ``table`` (``runs`` or an alias of it) that are attempts of a run of a slot
    (``base.slot_run``): of every trigger this version knows but ``manual``, and a ``retry``
    only when its run's first attempt is there and of such a trigger too. A run's kind is its
    first attempt's trigger: a manual run's retries record ``retry``, and taken for a slot, the
    manual moment would hide the slots missed before it; a lone ``retry`` (its first attempt
    pruned while the run waited for it) tells nothing of its kind. Only a retry is looked up,
    one seek in the primary key: the schedule's rows, nearly all of them, pay nothing for it
    (SQLite and PostgreSQL both stop at the first term of an OR that holds).

    With ``seek`` (a WHERE that reads a few rows), the first attempt's trigger is read by a
    scalar subquery, which PostgreSQL answers with that seek whatever its estimates: the
    EXISTS it may turn into a hash of every first attempt of the table, built at the first
    retry met, a read of the whole table (its choice for a task's range at 10 000 runs)."""
    first = runs.alias("first_attempt")
    attempt_one = sa.and_(first.c.id == table.c.id, first.c.attempt == 1)
    if seek:
        kind = sa.select(first.c.trigger).where(attempt_one).scalar_subquery()
        # No first attempt: NULL, and the row is not of a slot (for a WHERE, not negated).
        slot_first: sa.ColumnElement[bool] = kind.in_(_SLOT_TRIGGERS)
    else:
        found = sa.select(first.c.id).where(attempt_one, first.c.trigger.in_(_SLOT_TRIGGERS))
        slot_first = found.exists()
    return sa.and_(
        table.c.trigger.in_(_SLOT_TRIGGERS),
        sa.or_(table.c.trigger != Trigger.RETRY.value, slot_first),
    )


def last_slots(conn: Connection, tasks: Collection[str] | None = None) -> dict[str, datetime]:
    """See ``RunStore.last_slots``."""
    if tasks is not None:
        found: dict[str, datetime] = {}
        for task, at in _per_task(conn, _newest_slots(conn.dialect.name), tasks):
            if at is not None:
                found[task] = utc(at)
        return found
    stmt = (
        sa.select(_c.task, sa.func.max(_c.scheduled_at)).where(of_scheduled_run()).group_by(_c.task)
    )
    # max() keeps the column's type, so the UTC conversion applies to the result. The rows
    # fetched whole first, here and below: a conversion that raised while a statement was
    # unfinished kept its pooled SQLite connection on an old snapshot (see ``sql``).
    return {task: utc(at) for task, at in conn.execute(stmt).all()}


@functools.cache
def _newest_slots(dialect: str) -> sa.Select[Any]:
    """For each task asked, its newest slot: read from the end of its ``ix_runs_task_scheduled``
    range back to the first row of a slot (the first row, unless the newest are manual runs or
    their retries), never the whole history as the grouped query above does (a second at a
    million runs, which a replica taking tasks over waited for). ORDER BY ... LIMIT 1, not
    max(): the planner need not know that max() may stop at the first row that qualifies."""
    asked, task = _asked(dialect)
    newest = sa.select(_c.scheduled_at).where(_c.task == task, of_scheduled_run(seek=True))
    newest = newest.order_by(_c.scheduled_at.desc()).limit(1)
    return sa.select(task, newest.scalar_subquery()).select_from(asked)


# ``sql_rows.READABLE`` in a CASE, which planners estimate to hold for half the rows:
# PostgreSQL took the two IN lists for rare (their selectivities multiplied) and sorted a
# task's whole history rather than read its index backwards to the first row they hold for
# (the first row, unless a newer crontask wrote it).
_READABLE: Final = sa.case((sa.and_(*sql_rows.READABLE), sa.true()), else_=sa.false())


def latest(conn: Connection, task: str) -> RunRecord | None:
    """See ``RunStore.latest``."""
    return sql_rows.record_of(conn.execute(_newest_record(task)).first())


def _newest_record(task: str) -> sa.Select[Any]:
    """``task``'s newest readable record: the end of its ``ix_runs_task_scheduled`` range."""
    return sa.select(runs).where(_c.task == task, _READABLE).order_by(*NEWEST_FIRST).limit(1)


def latest_many(conn: Connection, tasks: Collection[str]) -> dict[str, RunRecord]:
    """See ``RunStore.latest_many``."""
    rows = _per_task(conn, _newest_records(conn.dialect.name), tasks)
    return {record.task: record for record in sql_rows.records_of(rows)}


@functools.cache
def _newest_records(dialect: str) -> sa.Select[Any]:
    """For each task asked, its newest readable record without its output: the last entry of
    its ``ix_runs_task_scheduled`` range (newest first is that index backwards), then that
    one row. PostgreSQL joins it LATERAL; SQLite, which has no LATERAL, looks the row up by
    the rowid the range's end gives. Tasks without a record have no row. Made once per
    dialect (see :func:`_newest_ends`)."""
    asked, task = _asked(dialect)
    shown = [c for c in runs.c if c.name != "output"]  # up to 64 KiB a record, not shown
    newest = sa.select(*shown).where(_c.task == task, _READABLE)
    newest = newest.order_by(*NEWEST_FIRST).limit(1)
    if dialect != "sqlite":
        lateral = newest.lateral("newest")
        return sa.select(*lateral.c).select_from(asked).join(lateral, sa.true())
    found = runs.alias("found")
    at = newest.with_only_columns(sa.literal_column("rowid")).scalar_subquery()
    row = sa.select(*(found.c[c.name] for c in shown)).select_from(asked)
    return row.join(found, sa.literal_column("found.rowid") == at)


# The statuses of an attempt that ended (a skipped slot never ran); a success first.
_ENDED: Final = (RunStatus.SUCCEEDED, *sorted(FAILED_STATUSES))
# Tasks per query: each is one bound parameter, so this only bounds one statement's work.
_KEYS_PER_QUERY: Final = 2_000


def last_outcomes(conn: Connection, tasks: Collection[str]) -> dict[str, LastOutcomes]:
    """See ``RunStore.last_outcomes``. On PostgreSQL without JIT compilation, for this
    transaction: the planner costs each task's look past the attempts whose process died as a
    scan of its whole range when such rows fill the table (a store of a crash loop), past
    ``jit_above_cost``, and a compile of 70 ms or more was paid at every call for lookups at
    the ends of index ranges, which JIT cannot speed up."""
    if conn.dialect.name == "postgresql":
        conn.execute(_NO_JIT)
    found: dict[str, LastOutcomes] = {}
    for task, *ends in _per_task(conn, _newest_ends(conn.dialect.name), tasks):
        outcome = _outcome(ends)
        if outcome is not None:
            found[task] = outcome
    return found


_NO_JIT: Final = sa.text("SELECT set_config('jit', 'off', true)")  # this transaction only


def _per_task(conn: Connection, stmt: sa.Select[Any], tasks: Collection[str]) -> Iterator[Any]:
    """The rows of ``stmt`` (a statement over :func:`_asked`) for ``tasks``, a chunk of
    :data:`_KEYS_PER_QUERY` at a time, each chunk fetched whole (see :func:`last_slots`)."""
    wanted = list(dict.fromkeys(tasks))
    for start in range(0, len(wanted), _KEYS_PER_QUERY):
        chunk = wanted[start : start + _KEYS_PER_QUERY]
        asked = json.dumps(chunk) if conn.dialect.name == "sqlite" else chunk
        yield from conn.execute(stmt, {"asked": asked}).all()


def _asked(dialect: str) -> tuple[sa.TableValuedAlias, sa.ColumnElement[str]]:
    """The tasks asked, one row each, from a single parameter ``asked``: a JSON array for
    SQLite (``json_each``), an array for PostgreSQL (``unnest``). One parameter, not a row of
    parameters per task, so that the statement is compiled once and then taken from
    SQLAlchemy's cache: compiling a list of 500 rows cost twice what SQLite took to answer it."""
    if dialect == "sqlite":
        each = sa.func.json_each(sa.bindparam("asked", type_=sa.String)).table_valued("value")
        return each, each.c.value
    array = sa.bindparam("asked", type_=postgresql.ARRAY(sa.Text))
    rows = sa.func.unnest(array).table_valued("task").render_derived()
    return rows, rows.c.task


@functools.cache
def _newest_ends(dialect: str) -> sa.Select[Any]:
    """For each task asked and each status of :data:`_ENDED`, three lookups at the end of
    its ``ix_runs_task_status_finished`` range: the newest end; the newest end of an attempt
    that started (an abandoned retry did not) and whose end is known (not ``interrupted``
    because its process died); and how long that attempt ran (the longest, where two ended at
    the same instant). Reading the range's end, never the range, keeps the cost per task flat
    however long its history: of the ``interrupted`` range, the attempts passed over (of
    crontask's shutdowns, of processes that died) are read back to the first that is not,
    usually none or a few, never more than the failed attempts retention keeps. Made once per
    dialect: even taken from SQLAlchemy's cache, a statement made anew cost 2 of the 3 ms of a
    call asking two tasks (the status page asks a page's tasks at a time)."""
    asked, task = _asked(dialect)
    took = _seconds(dialect, _c.started_at, _c.finished_at)
    columns: list[sa.ColumnElement[Any]] = [task]
    for status in _ENDED:
        of = sa.and_(_c.task == task, _c.status == status.value)
        newest = sa.select(sa.func.max(_c.finished_at)).where(of)
        if status is RunStatus.INTERRUPTED:
            # A run crontask's own shutdown interrupted counts for nothing here
            # (core.status.is_failure): read back from the end of the range until one that
            # is not, usually the first.
            of = sa.and_(of, sa.or_(_c.reason.is_(None), _c.reason != SHUTDOWN_REASON))
            told = sa.and_(of, _c.finished_at.is_not(None))
            newest = sa.select(_c.finished_at).where(told).order_by(_c.finished_at.desc()).limit(1)
        # An end recorded: PostgreSQL sorts NULL first when descending (a record without one
        # would hide the newest end), SQLite last.
        ran = sa.and_(of, _c.started_at.is_not(None), _c.finished_at.is_not(None))
        if status is RunStatus.INTERRUPTED:
            # Nor how long an attempt ran whose process died: its end is when a crontask found
            # it dead (after a crash, when crontask came back), and the downtime taken for its
            # duration stretched the alert on runs in progress (``CrontaskTaskRunningLong``).
            # Read back past those too; it is still the task's last failure.
            ran = sa.and_(ran, sa.or_(_c.reason.is_(None), _c.reason != PROCESS_DIED))
        newest_ran = sa.select(_c.finished_at, took).where(ran)
        newest_ran = newest_ran.order_by(_c.finished_at.desc(), took.desc()).limit(1)
        columns += [
            _comparable(dialect, newest),
            _comparable(dialect, newest_ran.with_only_columns(_c.finished_at)),
            newest_ran.with_only_columns(took).scalar_subquery(),
        ]
    return sa.select(*columns).select_from(asked)


def _comparable(dialect: str, end: sa.Select[Any]) -> sa.ColumnElement[Any]:
    """A datetime column as :func:`_outcome` compares it. On SQLite, its text: fixed-width
    UTC, which orders as the times do. Of the ten a task has, two are kept, and only those are
    converted: converting all of them was about a tenth of the first scrape after a start
    (10 000 tasks: 80 000 conversions). PostgreSQL's are converted to UTC as they are read:
    psycopg gives them in the session's time zone, and two datetimes of one zone compare by
    their wall clocks, which in the hour a clock goes back puts a later end first."""
    if dialect == "sqlite":
        return sa.type_coerce(end.scalar_subquery(), sa.String())
    return end.scalar_subquery()


def _utc(end: str | datetime) -> datetime:
    """An end of :func:`_comparable` as an aware UTC datetime."""
    return datetime.fromisoformat(end).replace(tzinfo=UTC) if isinstance(end, str) else end


def _outcome(ends: Sequence[Any]) -> LastOutcomes | None:
    """One task's :class:`LastOutcomes` from the columns of :func:`_newest_ends`; ``None``
    when it never ended."""
    # The ends as read (all SQLite's text, or all UTC datetimes): compared as they are.
    success: Any = None
    failure: Any = None
    ran: tuple[Any, float] | None = None
    for i, status in enumerate(_ENDED):
        end, ran_end, took = ends[3 * i : 3 * i + 3]
        if end is None:
            continue
        if status is RunStatus.SUCCEEDED:
            success = end
        elif failure is None or end > failure:
            failure = end
        if ran_end is not None:
            candidate = (ran_end, max(float(took or 0.0), 0.0))
            ran = candidate if ran is None or candidate > ran else ran
    if success is None and failure is None:
        return None
    return LastOutcomes(
        None if success is None else _utc(success),
        None if failure is None else _utc(failure),
        None if ran is None else ran[1],
    )


def _seconds(
    dialect: str, start: sa.ColumnElement[datetime], end: sa.ColumnElement[datetime]
) -> sa.ColumnElement[float]:
    """``end - start`` in seconds, computed by the database: reading both datetimes back
    cost more than the query itself. SQLite's Julian days hold a second to about 40 µs, so
    that difference is rounded to the millisecond."""
    if dialect == "sqlite":
        days = sa.func.julianday(end) - sa.func.julianday(start)
        return sa.func.round(days * 86_400.0, 3)
    return sa.type_coerce(sa.extract("epoch", end - start), sa.Float())
