"""What history retention keeps of a task however old (``sql_retention``): the SQL tests of a
row that is its task's newest run of a slot (``mark``), or its task's last word (``last_word``:
its last success, or the last attempt that says how the task did). Built here, evaluated in
retention's windows, one row at a time, with a seek or two each."""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from reconciler.core.runs import RunStatus
from reconciler.core.status import SHUTDOWN_REASON
from reconciler.store.sql_schema import runs
from reconciler.store.sql_summaries import of_scheduled_run


def place(table: sa.FromClause) -> sa.Tuple:
    """A row's place in a task's history: its slot, then its id (retention's order)."""
    return sa.tuple_(table.c.scheduled_at, table.c.id)


def mark(old: sa.FromClause) -> sa.ColumnElement[bool]:
    """Whether a row of ``old`` is of its task's newest run of a slot: its run is a run of a
    slot (told by the row: all of a run's attempts are, or none; a retry by a seek in the
    primary key, to its run's first attempt, never an EXISTS that PostgreSQL may answer by
    hashing the table, see ``last_word``) and no run of a slot comes after it (one seek in
    ``ix_runs_task_scheduled``)."""
    other = runs.alias("other")
    scheduled = of_scheduled_run(other)
    own = of_scheduled_run(old, seek=True)  # NULL for a lone retry: not a slot's (the ELSE)
    later = (
        sa.select(other.c.id)
        .where(other.c.task == old.c.task, other.c.scheduled_at > old.c.scheduled_at, scheduled)
        .exists()
    )
    # CASE, not AND: an AND in a result column may evaluate both sides, and ``later`` of a
    # manual run reads every newer row of its task (20 000 manual runs: 22 s).
    return sa.case((own, sa.case((later, sa.false()), else_=sa.true())), else_=sa.false())


def _tells(table: sa.FromClause) -> sa.ColumnElement[bool]:
    """Rows of ``table`` that say how their task did (``base.tells``): succeeded, or failed,
    timed out, or interrupted but not by crontask's own shutdown (a NULL reason is none)."""
    reason = table.c.reason
    return sa.or_(
        table.c.status.in_([RunStatus.SUCCEEDED.value, *_FAILED_OUTRIGHT]),
        sa.and_(
            table.c.status == RunStatus.INTERRUPTED.value,
            sa.or_(reason.is_(None), reason != SHUTDOWN_REASON),
        ),
    )


_FAILED_OUTRIGHT: Final = (RunStatus.FAILED.value, RunStatus.TIMED_OUT.value)


def last_word(old: sa.FromClause) -> sa.ColumnElement[bool]:
    """Whether a row of ``old`` is the task's last success (it succeeded, and no success
    finished after it: ``base.last_success_order``), or an attempt that says how its task did
    (``_tells``) of which no later run of the task has one. What a restart reads the task's
    state from (``base.RetentionTally``), kept however old as the mark is; a run is kept when
    one of its attempts is either (the caller reads all of them).

    A test of the row's own columns, then, only for a row that passes it, a seek or two: at
    the row's end in ``ix_runs_task_status_finished`` for a success that finished later, and
    in ``ix_runs_task_scheduled`` forward to the next row that tells (usually the next). Not
    an EXISTS on the row's run for its own test: PostgreSQL hashed every succeeded row of the
    table for it, once a transaction (465 ms, not 65, a window of 2 000 rows of 1 000 000).
    Nor a read forward to the next success by slot: of a task failing since, all its rows."""
    said = runs.alias("said")
    later_said = (
        sa.select(said.c.id)
        .where(said.c.task == old.c.task, said.c.scheduled_at > old.c.scheduled_at, _tells(said))
        .exists()
    )
    won = runs.alias("won")
    ended = old.c.finished_at
    tie = sa.and_(won.c.finished_at == ended, place(won) > place(old))
    later_won = (
        sa.select(won.c.id)
        .where(
            won.c.task == old.c.task,
            won.c.status == RunStatus.SUCCEEDED.value,
            won.c.finished_at >= ended,
            sa.or_(won.c.finished_at > ended, tie),
        )
        .exists()
    )
    # CASE, not AND, as in mark: the seeks only for the rows that pass their own test, and
    # only the first for the last success (it tells too).
    success = sa.and_(old.c.status == RunStatus.SUCCEEDED.value, ended.is_not(None))
    last_said = sa.case((later_said, sa.false()), else_=sa.true())
    return sa.case(
        (success, sa.case((later_won, last_said), else_=sa.true())),
        (_tells(old), last_said),
        else_=sa.false(),
    )
