"""Reads of the SQL store that summarise each task's history in one grouped query, for
start-up and for a task that comes to this process: the newest slot (missed runs) and the
newest end of a success and of a failure (metrics). Each groups by task through
``ix_runs_task_scheduled``, never a query per task."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Final

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


def _newest_end(statuses: Collection[RunStatus]) -> sa.ColumnElement[datetime]:
    """The newest ``finished_at`` among a group's records of ``statuses``. The statuses are
    told apart here rather than in WHERE: a filter on status lets the database read the status
    index (every task's records, at each query) instead of the task index (the asked tasks')."""
    chosen = _c.status.in_(sorted(s.value for s in statuses))
    return sa.func.max(sa.case((chosen, _c.finished_at)))


_LAST_SUCCESS: Final = _newest_end([RunStatus.SUCCEEDED])
_LAST_FAILURE: Final = _newest_end(FAILED_STATUSES)
# Tasks per query: well under every database's limit of bound parameters; each is one lookup
# in the task index.
_KEYS_PER_QUERY: Final = 500


def last_outcomes(conn: Connection, tasks: Collection[str]) -> dict[str, LastOutcomes]:
    """See ``RunStore.last_outcomes``."""
    wanted = list(tasks)
    found: dict[str, LastOutcomes] = {}
    for start in range(0, len(wanted), _KEYS_PER_QUERY):
        stmt = (
            sa.select(_c.task, _LAST_SUCCESS, _LAST_FAILURE)
            .where(_c.task.in_(wanted[start : start + _KEYS_PER_QUERY]))
            .group_by(_c.task)
        )
        for task, success, failure in conn.execute(stmt):
            if success is not None or failure is not None:
                found[task] = LastOutcomes(
                    None if success is None else utc(success),
                    None if failure is None else utc(failure),
                )
    return found
