"""The ``tracked`` table (migration 0008): per task, when a crontask last began counting its
slots without catching any up (``RunStore.mark_tracked``). ``last_slots`` answers the later of
that and the task's newest recorded slot, so a start counts the slots missed from where this
crontask was counting them: not from a run before the task was removed and declared again, and
for a task that never ran, from when it was declared rather than not at all.

A write is one statement for up to ``ROWS_PER_WRITE`` tasks (the tasks of one pass together, in
as many transactions as it takes, ``pause`` seconds apart), and never moves a mark back: two
replicas, or a late write, leave the later one. SQLite holds its write lock until the commit,
and 100 000 marks in one transaction held it 1.5-2.8 s: a claim from another connection waited
as long, or failed "database is locked". Forgetting aged marks reads them in a read transaction
and deletes them in bounded write transactions, as prune (``sql_retention``) does.

Marks are written off the hot path (a thread of their own), waiting for a lock another holds
as a run's write does (WRITE_LOCK_WAIT): a stop waits for the write. A write that fails is sent
again with the next pass's (``Dispatcher.mark_tracked``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from reconciler.store.records import utc
from reconciler.store.sql_schema import tracked

_KEYS_PER_QUERY: Final = 2_000
# Marks written, or deleted, per write transaction: on SQLite 2 000 hold the write lock for
# tens of milliseconds (as a prune's transaction, ``sql_retention._PRUNE_TX_ROWS``).
ROWS_PER_WRITE: Final = 2_000

Write = Callable[[Callable[[Connection], Any]], Any]  # runs its work in one write transaction
Read = Callable[[], AbstractContextManager[Connection]]  # a read transaction


def mark(write: Write, since: Mapping[str, datetime], *, pause: float = 0.0) -> None:
    """See ``RunStore.mark_tracked``: ``ROWS_PER_WRITE`` tasks a transaction (from
    ``write``), ``pause`` seconds apart (SQLite: the claims waiting for the lock get it)."""
    tasks = sorted(since)  # one order: two replicas' batches lock their rows alike
    for start in range(0, len(tasks), ROWS_PER_WRITE):
        if start:
            time.sleep(pause)
        chunk = {task: since[task] for task in tasks[start : start + ROWS_PER_WRITE]}
        write(functools.partial(_mark, since=chunk))


def _mark(conn: Connection, since: Mapping[str, datetime]) -> None:
    """One statement, compiled once and given every row (SQLite runs it per row, inside the
    transaction; PostgreSQL's driver sends batches), so that the write lock is held for the
    rows, not for compiling thousands of them into one."""
    rows = [{"task": task, "since": utc(at)} for task, at in since.items()]
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


def forget_aged(
    read: Read,
    write: Write,
    cutoff: datetime,
    declared: Collection[str],
    *,
    pause: float = 0.0,
) -> int:
    """Delete the marks older than ``cutoff`` of tasks not in ``declared``: a task no longer
    declared has no slot to come, as its newest run goes by age (``sql_retention``). Read in
    a read transaction (``read``), deleted ``ROWS_PER_WRITE`` a write transaction, ``pause``
    seconds apart; how many went."""
    cutoff = utc(cutoff)
    with read() as conn:
        aged = sa.select(tracked.c.task).where(tracked.c.since < cutoff)
        doomed = [task for task in conn.execute(aged).scalars().all() if task not in declared]
    # Still older than the cutoff: a task marked again since it was read (declared again) stays.
    still_aged = tracked.c.since < cutoff
    deleted = 0
    for start in range(0, len(doomed), ROWS_PER_WRITE):
        if start:
            time.sleep(pause)
        chunk = doomed[start : start + ROWS_PER_WRITE]
        statement = tracked.delete().where(tracked.c.task.in_(chunk), still_aged)
        deleted += int(write(functools.partial(_rows, statement=statement)))
    return deleted


def _rows(conn: Connection, statement: sa.Executable) -> int:
    """How many rows ``statement`` changed."""
    return int(conn.execute(statement).rowcount)


def _chunks(tasks: Collection[str]) -> Iterator[list[str]]:
    wanted = list(dict.fromkeys(tasks))
    for start in range(0, len(wanted), _KEYS_PER_QUERY):
        yield wanted[start : start + _KEYS_PER_QUERY]
