"""The SQL store's statements on the runs going (``status = running``), and on those whose
owner went away: the runs going (``running``), a stop asked through the store
(``request_stop``, ``stop_requests``: also of an attempt its owner runs still, whatever its
record says), a run another owner takes over (``take_over``), the runs of owners gone marked
interrupted (``mark_interrupted``), and those of them no one has told of yet (``untold``,
``take_untold``). Built here, run by :class:`~reconciler.store.sql.SqlRunStore` in its
transactions.

An UPDATE ... RETURNING marks runs interrupted and takes the untold: a row is reported by
exactly one caller, and a concurrent ``complete()`` is either before it (the row no longer
matches) or after it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from reconciler.core.runs import PROCESS_DIED, UNTOLD_NOTES, RunRecord, RunStatus
from reconciler.store import sql_rows
from reconciler.store.base import INTERRUPTED_MESSAGE, UNTOLD_MAX
from reconciler.store.records import utc
from reconciler.store.sql_schema import runs

_c = runs.c
# The records mark_interrupted ended with the note UNTOLD (see RunStore.untold), as this
# crontask writes it or as crontasks before did (``core.runs.UNTOLD_NOTES``): the SQL twin of
# ``core.runs.untold``.
_UNTOLD = (
    _c.status == RunStatus.INTERRUPTED.value,
    _c.reason == PROCESS_DIED,
    sa.or_(*(_c.message.endswith(note, autoescape=True) for note in UNTOLD_NOTES)),
)
# The rows a save keeping marks may write over (``store.keep_marks``): all but those
# mark_interrupted ended and no stop was asked of (``memory._saved_over``); NULL: not marked.
SAVED_OVER: Final = sa.or_(
    _c.status != RunStatus.INTERRUPTED.value,
    _c.reason.is_(None),
    _c.reason != PROCESS_DIED,
    _c.stop_requested.is_not(None),
)
_OLDEST_FIRST = (_c.scheduled_at, _c.id, _c.attempt)
# The run ids one read of ``stop_requests_chunked`` names at most.
STOP_IDS_AT_ONCE: Final = 500


def running(task: str | None) -> sa.Executable:
    stmt = sa.select(runs).where(_c.status == RunStatus.RUNNING.value)
    if task is not None:
        stmt = stmt.where(_c.task == task)
    return stmt.order_by(*_OLDEST_FIRST)


def request_stop(ids: list[str], reason: str) -> sa.Executable:
    return (
        runs.update()
        .where(_c.status == RunStatus.RUNNING.value, _c.id.in_(ids))
        .values(stop_requested=reason[:64])
    )


def stop_requests(owner: str, runs: Collection[str], *, running: bool = True) -> sa.Executable:
    # Read at each renewal: the running attempts (unless not ``running``: a later chunk of the
    # ids, ``SqlRunStore.stop_requests``) through ix_runs_status_scheduled (few), the runs going
    # on the owner (``runs``, by id) through the primary key, whatever their status, for one
    # marked interrupted by another replica while the owner was frozen runs on all the same.
    # Each term has its index (PostgreSQL's BitmapOr, SQLite's MULTI-INDEX OR): no scan of the
    # history's interrupted rows, nor of all of it. Every attempt of those ids is read: the
    # caller keeps the ones going (a stop asked of an ended attempt is not its retry's).
    terms = [_c.status == RunStatus.RUNNING.value] if running else []
    if runs:
        terms.append(_c.id.in_(sorted(set(runs))))
    return sa.select(_c.id, _c.attempt, _c.stop_requested, _c.status).where(
        sa.or_(*terms), _c.owner == owner, _c.stop_requested.is_not(None)
    )


def stop_requests_chunked(owner: str, runs: Collection[str]) -> list[sa.Executable]:
    """The reads of :func:`stop_requests`, ``STOP_IDS_AT_ONCE`` ids each: one IN list as long
    as the runs in flight turned PostgreSQL's plan into a scan of the table past ~1 500 ids,
    and failed outright past 65 535 parameters. The first reads the running attempts too."""
    ids = sorted(set(runs))
    chunks = [ids[at : at + STOP_IDS_AT_ONCE] for at in range(0, len(ids), STOP_IDS_AT_ONCE)]
    return [stop_requests(owner, chunk, running=i == 0) for i, chunk in enumerate(chunks or [[]])]


def asked_to_stop(
    rows: Iterable[Sequence[Any]], going: Collection[tuple[str, int]]
) -> list[tuple[str, int, str]]:
    """Of the rows :func:`stop_requests_chunked` read, ``(id, attempt, reason)`` of the running
    attempts and of those ``going`` (``(id, attempt)``): not another attempt of those runs."""
    here = set(going)
    return sorted(
        (row[0], row[1], row[2])
        for row in rows
        if row[3] == RunStatus.RUNNING.value or (row[0], row[1]) in here
    )


def take_over(run_id: str, attempt: int, owner: str) -> tuple[sa.Executable, sa.Executable]:
    """The update that takes the run over, and the read of its row after it."""
    update = (
        runs.update()
        .where(_c.id == run_id, _c.attempt == attempt, _c.status == RunStatus.RUNNING.value)
        .values(owner=owner, stop_requested=None)
    )
    return update, sa.select(runs).where(_c.id == run_id, _c.attempt == attempt)


def mark_interrupted(owners: list[str], kept: list[str], now: datetime, note: str) -> sa.Executable:
    before, after = INTERRUPTED_MESSAGE.split("{owner}")
    return (
        runs.update()
        .where(
            _c.status == RunStatus.RUNNING.value,
            _c.owner.in_(owners),
            *([_c.id.not_in(kept)] if kept else []),
        )
        .values(
            status=RunStatus.INTERRUPTED.value,
            finished_at=now,
            exit_code=None,
            reason=PROCESS_DIED,
            message=sa.literal(before) + _c.owner + sa.literal(after + note),
        )
        .returning(*runs.c)
    )


def untold(since: datetime, after: tuple[datetime, str, int] | None) -> sa.Executable:
    # Unreadable rows out in the WHERE: its caller goes on only after a whole page.
    stmt = sa.select(runs).where(*_UNTOLD, *sql_rows.READABLE, _c.finished_at >= utc(since))
    if after is not None:
        at, run, attempt = after
        key = sa.tuple_(_c.finished_at, _c.id, _c.attempt)
        stmt = stmt.where(
            key
            > sa.tuple_(
                sa.literal(utc(at), _c.finished_at.type),
                sa.literal(run, _c.id.type),
                sa.literal(attempt, _c.attempt.type),
            )
        )
    return stmt.order_by(_c.finished_at, _c.id, _c.attempt).limit(UNTOLD_MAX)


def _without_untold() -> sa.ColumnElement[str]:
    """The message without the note it ends with (either of ``UNTOLD_NOTES``)."""
    cut = [
        (
            _c.message.endswith(note, autoescape=True),
            sa.func.substr(_c.message, 1, sa.func.length(_c.message) - len(note)),
        )
        for note in UNTOLD_NOTES
    ]
    return sa.case(*cut, else_=_c.message)


def take_untold(ids: Collection[str]) -> sa.Executable:
    return (
        runs.update()
        .where(_c.id.in_(ids), *_UNTOLD)
        .values(message=_without_untold())
        .returning(*runs.c)
    )


def left_marked(conn: sa.Connection, rows: Iterable[dict[str, Any]]) -> list[RunRecord]:
    """In a save's transaction (``store.keep_marks``), after it: the records it left as
    mark_interrupted ended them (``SAVED_OVER``), as they stand. A row saved as one such
    itself (the end of a run of a crontask found dead) is no mark left."""
    keys = {sql_rows.row_key(row) for row in rows if not _marks(row)}
    ids = sorted({run for run, _ in keys})
    found: list[RunRecord] = []
    for at in range(0, len(ids), STOP_IDS_AT_ONCE):
        stmt = sa.select(runs).where(_c.id.in_(ids[at : at + STOP_IDS_AT_ONCE]), ~SAVED_OVER)
        found += sql_rows.records_of(conn.execute(stmt).all())
    return [r for r in found if (r.id, r.attempt) in keys]


def _marks(row: dict[str, Any]) -> bool:
    return bool(row["status"] == RunStatus.INTERRUPTED.value and row["reason"] == PROCESS_DIED)
