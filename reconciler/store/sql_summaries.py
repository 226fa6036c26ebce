"""Reads of the SQL store that summarise each task's history in grouped queries, for start-up
and for a task that comes to this process: the newest slot (missed runs), and the newest end
of a success and of a failure and the last attempt's duration (metrics). Each groups by task
through ``ix_runs_task_scheduled``, never a query per task."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.core.runs import LastOutcomes, RunStatus, Trigger
from reconciler.store.base import FAILED_STATUSES, utc
from reconciler.store.sql_schema import runs

_c = runs.c


def last_slots(conn: Connection) -> dict[str, datetime]:
    """See ``RunStore.last_slots``."""
    stmt = (
        sa.select(_c.task, sa.func.max(_c.scheduled_at))
        .where(_c.trigger != Trigger.MANUAL.value)
        .group_by(_c.task)
    )
    # max() keeps the column's type, so the UTC conversion applies to the result.
    return {task: utc(at) for task, at in conn.execute(stmt)}


def _ran(table: sa.FromClause) -> sa.ColumnElement[bool]:
    """An attempt that started (a skipped slot may carry a start, but never ran)."""
    return sa.and_(table.c.started_at.is_not(None), table.c.status != RunStatus.SKIPPED.value)


def _newest_end(chosen: sa.ColumnElement[bool]) -> sa.ColumnElement[datetime]:
    """The newest ``finished_at`` among a group's ``chosen`` records. They are told apart here
    rather than in WHERE: a filter on status lets the database read the status index (every
    task's records, at each query) instead of the task index (the asked tasks')."""
    return sa.func.max(sa.case((chosen, _c.finished_at)))


def _of(statuses: Collection[RunStatus]) -> sa.ColumnElement[bool]:
    return _c.status.in_(sorted(s.value for s in statuses))


_LAST_SUCCESS: Final = _newest_end(_of([RunStatus.SUCCEEDED]))
_LAST_FAILURE: Final = _newest_end(_of(FAILED_STATUSES))
_LAST_RAN: Final = _newest_end(_ran(runs))
# Tasks per query: well under every database's limit of bound parameters; each is one lookup
# in the task index.
_KEYS_PER_QUERY: Final = 500


def last_outcomes(conn: Connection, tasks: Collection[str]) -> dict[str, LastOutcomes]:
    """See ``RunStore.last_outcomes``."""
    wanted = list(tasks)
    found: dict[str, LastOutcomes] = {}
    for start in range(0, len(wanted), _KEYS_PER_QUERY):
        stmt = _last_outcomes(conn, wanted[start : start + _KEYS_PER_QUERY])
        for task, success, failure, took in conn.execute(stmt):
            if success is not None or failure is not None:
                found[task] = LastOutcomes(
                    None if success is None else utc(success),
                    None if failure is None else utc(failure),
                    None if took is None else max(float(took), 0.0),
                )
    return found


def _last_outcomes(conn: Connection, tasks: Sequence[str]) -> sa.Select[Any]:
    """Per task, grouped: the newest end of a success, of a failure and of any attempt that
    ran; then the attempt that ended then, joined by that end through the task index, for its
    duration (the longest, where two ended at the same instant)."""
    ends = (
        sa.select(
            _c.task,
            _LAST_SUCCESS.label("success"),
            _LAST_FAILURE.label("failure"),
            _LAST_RAN.label("ran"),
        )
        .where(_c.task.in_(tasks))
        .group_by(_c.task)
        .subquery()
    )
    last = runs.alias("last")
    took = sa.func.max(_seconds(conn, last.c.started_at, last.c.finished_at))
    joined = ends.outerjoin(
        last, sa.and_(last.c.task == ends.c.task, last.c.finished_at == ends.c.ran, _ran(last))
    )
    return (
        sa.select(ends.c.task, ends.c.success, ends.c.failure, took)
        .select_from(joined)
        .group_by(ends.c.task, ends.c.success, ends.c.failure)
    )


def _seconds(
    conn: Connection, start: sa.ColumnElement[datetime], end: sa.ColumnElement[datetime]
) -> sa.ColumnElement[float]:
    """``end - start`` in seconds, computed by the database: reading both datetimes back
    cost more than the query itself. SQLite's Julian days hold a second to about 40 µs, so
    that difference is rounded to the millisecond."""
    if conn.dialect.name == "sqlite":
        days = sa.func.julianday(end) - sa.func.julianday(start)
        return sa.func.round(days * 86_400.0, 3)
    return sa.type_coerce(sa.extract("epoch", end - start), sa.Float())
