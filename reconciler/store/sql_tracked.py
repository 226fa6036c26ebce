"""The ``tracked`` table (migration 0008): per task, when a crontask last began counting its
slots without catching any up (``RunStore.mark_tracked``). ``last_slots`` answers the later of
that and the task's newest recorded slot, so a start counts the slots missed from where this
crontask was counting them: not from a run before the task was removed and declared again, and
for a task that never ran, from when it was declared rather than not at all.

A write is one statement for any number of tasks (the tasks of one pass together), and never
moves a mark back: two replicas, or a late write, leave the later one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from reconciler.store.records import utc
from reconciler.store.sql_schema import tracked

_KEYS_PER_QUERY: Final = 2_000


def mark(conn: Connection, since: Mapping[str, datetime]) -> None:
    """See ``RunStore.mark_tracked``: one statement, compiled once and given every row (SQLite
    runs it per row, inside the caller's transaction; PostgreSQL's driver sends batches), so
    that the write lock is held for the rows, not for compiling 10 000 of them into one."""
    rows = [{"task": task, "since": utc(since[task])} for task in sorted(since)]  # one order
    insert = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(tracked)
    statement = insert.on_conflict_do_update(
        index_elements=["task"],
        set_={"since": insert.excluded.since},
        where=tracked.c.since < insert.excluded.since,  # a mark moves forward only
    )
    conn.execute(statement, rows)


def marks(conn: Connection, tasks: Collection[str] | None = None) -> dict[str, datetime]:
    """Each task's mark (of ``tasks``; every task's when None)."""
    if tasks is None:
        return {task: utc(at) for task, at in conn.execute(sa.select(tracked)).all()}
    found: dict[str, datetime] = {}
    for chunk in _chunks(tasks):
        query = sa.select(tracked).where(tracked.c.task.in_(chunk))
        found.update((task, utc(at)) for task, at in conn.execute(query).all())
    return found


def later(slots: dict[str, datetime], marked: Mapping[str, datetime]) -> dict[str, datetime]:
    """``slots`` (each task's newest recorded slot) with each task's mark where it is later."""
    for task, at in marked.items():
        slots[task] = max(at, slots.get(task, at))
    return slots


def forget_aged(conn: Connection, cutoff: datetime, declared: Collection[str]) -> int:
    """Delete the marks older than ``cutoff`` of tasks not in ``declared``: a task no longer
    declared has no slot to come, as its newest run goes by age (``sql_retention``)."""
    aged = sa.select(tracked.c.task).where(tracked.c.since < utc(cutoff))
    doomed = [task for task in conn.execute(aged).scalars().all() if task not in declared]
    for chunk in _chunks(doomed):
        conn.execute(tracked.delete().where(tracked.c.task.in_(chunk)))
    return len(doomed)


def _chunks(tasks: Collection[str]) -> Iterator[list[str]]:
    wanted = list(dict.fromkeys(tasks))
    for start in range(0, len(wanted), _KEYS_PER_QUERY):
        yield wanted[start : start + _KEYS_PER_QUERY]
