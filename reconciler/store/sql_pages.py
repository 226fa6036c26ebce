"""The SELECT behind ``RunStore.query`` on SQL: a :class:`~reconciler.store.query.RunQuery` as
one statement that an index answers in page order (newest first), with no full scan and no sort
step, although crontask never runs ANALYZE: the planner has no statistics to go on, so each
filter is written so that it can only take the right index. The cursor is a row-value
comparison on the sort key, so a next page starts in the index where the last one stopped.
``tests/store/test_sql_store.py`` checks the plans (``EXPLAIN``) of the usual queries.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from reconciler.core.runs import Trigger
from reconciler.store.query import Cursor, RunQuery
from reconciler.store.records import utc
from reconciler.store.sql_schema import NEWEST_FIRST, UNSCHEDULED, UTCDateTime, runs

__all__ = ["select_page"]

_c = runs.c


def _cursor_condition(cursor: Cursor) -> sa.ColumnElement[bool]:
    # Row-value comparison: both SQLite and PostgreSQL turn it into an index range on the
    # sort-key suffix of every index (explicitly typed binds so the datetime goes through UTC).
    return sa.tuple_(_c.scheduled_at, _c.id, _c.attempt) < sa.tuple_(
        sa.literal(cursor.scheduled_at, UTCDateTime()),
        sa.literal(cursor.id, sa.String()),
        sa.literal(cursor.attempt, sa.Integer()),
    )


def select_page(q: RunQuery) -> sa.Select[Any]:
    """The SELECT behind :meth:`SqlRunStore.query` (exposed so tests can EXPLAIN it).

    Fetches ``limit + 1`` rows: the extra one says whether there is a next page, without a COUNT.
    """
    conditions: list[sa.ColumnElement[bool]] = []

    # One task's runs are read through its index, whatever else is asked: without statistics
    # (crontask never runs ANALYZE) SQLite's planner took the status index for a task and a
    # status, and read every run of that status of every task to find one task's (a second a
    # page at 2 million runs). ``status || ''`` is no indexed column, so it cannot.
    def filtered(column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        return column.concat("") if q.task is not None else column

    if q.task is not None:
        conditions.append(_c.task == q.task)
    if q.status is not None:
        conditions.append(filtered(_c.status) == q.status.value)
    if q.trigger is not None:
        conditions.append(filtered(_c.trigger) == q.trigger.value)
        if q.trigger is not Trigger.SCHEDULE and q.task is None:
            # Implied by the line above; said so that the partial index can be used.
            conditions.append(sa.and_(UNSCHEDULED))
    if q.since is not None:
        conditions.append(_c.scheduled_at >= utc(q.since))
    if q.until is not None:
        conditions.append(_c.scheduled_at < utc(q.until))
    if q.cursor is not None:
        conditions.append(_cursor_condition(Cursor.decode(q.cursor)))
    columns = runs.c if q.output else [c for c in runs.c if c.name != "output"]
    return sa.select(*columns).where(*conditions).order_by(*NEWEST_FIRST).limit(q.limit + 1)
