"""The exclusive claim's transaction (``RunStore.claim_exclusive``): a look for the runs of the
batch's tasks going for another owner, and the insert of the records it allows, as one write.

SQLite's write transaction (``BEGIN IMMEDIATE``) is exclusive already. PostgreSQL's look must
wait for the other claimers of each task and then see what they wrote: exclusive claims of one
task are serialised by an advisory transaction lock on (this module's class, the task's hash),
two 32-bit keys, so apart from the migrations' 64-bit lock; taken in task order (a sorted
subquery), so two claimers of several tasks do not deadlock. Each statement of a READ COMMITTED
transaction sees what was committed before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store.exclusive import ExclusiveClaim, decide_exclusive
from reconciler.store.sql_rows import readable, record_to_row, row_key, row_to_record
from reconciler.store.sql_schema import runs

TASK_LOCK: Final = 0x63726F6E  # "cron"
LOCK_TASKS: Final = sa.text(
    "SELECT count(pg_advisory_xact_lock(:kind, hashtext(t))) "
    "FROM (SELECT unnest(CAST(:tasks AS text[])) AS t ORDER BY 1) AS sorted"
)
_c = runs.c


def claim(
    conn: Connection, records: Sequence[RunRecord], claim_stmt: Insert, sqlite: bool
) -> list[ExclusiveClaim]:
    """In the write transaction of ``conn``: what ``claim_exclusive`` answers for ``records``
    (normalized), inserting with ``claim_stmt`` (insert, skip what exists, return the keys)."""
    tasks = sorted({r.task for r in records})
    # What decides (see decide_exclusive): the tasks' running attempts, and the records whose
    # ids are in the batch. Not their output, which may be 64 KiB each.
    look = sa.select(*[c for c in runs.c if c.name != "output"]).where(
        _c.task.in_(tasks),
        sa.or_(_c.status == RunStatus.RUNNING.value, _c.id.in_(sorted({r.id for r in records}))),
    )
    if not sqlite:
        conn.execute(LOCK_TASKS, {"kind": TASK_LOCK, "tasks": tasks})
    answers = decide_exclusive(records, _deciding(conn.execute(look).all()))
    rows = [record_to_row(r) for r, a in zip(records, answers, strict=True) if a.claimed]
    inserted: set[tuple[str, int]] = set()
    if rows:  # in key order, as claim_many
        found = conn.execute(claim_stmt, sorted(rows, key=row_key))
        inserted = {(row.id, row.attempt) for row in found}
    # A record not inserted after all: claim_many inserted its key meanwhile.
    return [
        a if not a.claimed or (r.id, r.attempt) in inserted else ExclusiveClaim(False)
        for r, a in zip(records, answers, strict=True)
    ]


def _deciding(rows: Sequence[sa.Row[Any]]) -> list[RunRecord]:
    """The stored attempts that decide a claim, fetched whole first (see ``records_of``). A
    row this version cannot read still holds its task when it is running (a trigger only a
    newer crontask knows, during a rolling upgrade: its run must keep another off as any run
    does), read as a scheduled run; any other is left out, and its key, if it is one of the
    batch's, is refused by the insert all the same."""
    deciding: list[RunRecord] = []
    for row in rows:
        if readable(row.status, row.trigger):
            deciding.append(row_to_record(row))
        elif row.status == RunStatus.RUNNING.value:
            deciding.append(row_to_record(row, trigger=Trigger.SCHEDULE))
    return deciding
