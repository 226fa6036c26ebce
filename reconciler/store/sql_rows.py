"""A :class:`~reconciler.core.runs.RunRecord` as a row of the ``runs`` table, and back.

The record's fields are the table's columns, but for ``job``: its JSON in ``details``, read
back leniently (a value this version cannot read costs the record its job details, not the
record). The store's operations (``sql.py``) write and read whole records through these.

A row whose ``status`` or ``trigger`` this version does not know (the columns have no CHECK: a
newer crontask sharing the database wrote it, or a hand edit) is left out of what is read, as
if it were not there (:func:`records_of`, :data:`READABLE`), with a warning once per value:
one such row made every list of the history, the status page and retention fail.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final

import sqlalchemy as sa

from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger
from reconciler.store.sql_schema import runs

__all__ = [
    "MUTABLE",
    "READABLE",
    "readable",
    "record_of",
    "record_to_row",
    "records_of",
    "row_key",
    "row_to_record",
]

log = logging.getLogger("crontask.store")

# The columns of a record's mutable fields (``RunStore.complete``): what an update overwrites.
MUTABLE = (
    "status",
    "started_at",
    "finished_at",
    "exit_code",
    "reason",
    "message",
    "output",
    "details",
)


_KNOWN: Final = {
    "status": frozenset(s.value for s in RunStatus),
    "trigger": frozenset(t.value for t in Trigger),
}
# The rows this version can read, as a WHERE: for a read that must not come back short (a
# page of runs the caller goes on after, one record asked for). Each column's text with ''
# appended, no indexed column: the filter cannot make a planner without statistics take the
# status index for a query on a task (see sql_pages).
READABLE: Final = tuple(
    runs.c[column].concat("").in_(sorted(values)) for column, values in _KNOWN.items()
)
# How many unknown values are warned of, once each: a hand edit may write any number.
_WARNED_MAX: Final = 32
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def readable(status: str, trigger: str) -> bool:
    """Whether this version reads a row of ``status`` and ``trigger``; an unknown value is
    warned of the first time it is seen, never per row (a page may hold a thousand)."""
    unknown = [(c, v) for c, v in (("status", status), ("trigger", trigger)) if v not in _KNOWN[c]]
    for column, value in unknown:
        with _warned_lock:
            first = len(_warned) < _WARNED_MAX and (column, value) not in _warned
            if first:
                _warned.add((column, value))
        if first:
            log.warning(
                "run records this crontask cannot read are left out (a newer crontask shares "
                "the run store, or it was edited by hand)",
                extra={"fields": {"column": column, "value": str(value)[:64]}},
            )
    return not unknown


def records_of(rows: Iterable[sa.Row[Any]]) -> list[RunRecord]:
    """The records of the ``rows`` this version reads (:func:`readable`), in their order.
    ``rows`` are fetched whole first (``Result.all()``): a statement left unfinished by a
    conversion that raised kept its pooled SQLite connection on an old snapshot, and every
    write on it failed "database is locked" once another connection had written."""
    return [row_to_record(row) for row in rows if readable(row.status, row.trigger)]


def record_of(row: sa.Row[Any] | None) -> RunRecord | None:
    """The record of ``row``; ``None`` for no row, or one this version does not read."""
    return None if row is None or not readable(row.status, row.trigger) else row_to_record(row)


def row_to_record(row: sa.Row[Any], *, trigger: Trigger | None = None) -> RunRecord:
    """The record of ``row`` (``trigger``: read as this one); ValueError if its status or
    trigger is unknown (see :func:`records_of`, which leaves such rows out)."""
    return RunRecord(
        id=row.id,
        task=row.task,
        scheduled_at=row.scheduled_at,
        trigger=trigger or Trigger(row.trigger),
        status=RunStatus(row.status),
        attempt=row.attempt,
        started_at=row.started_at,
        finished_at=row.finished_at,
        exit_code=row.exit_code,
        reason=row.reason,
        message=row.message,
        output=row._mapping.get("output") or "",
        owner=row.owner,
        job=_details(row.details),
    )


def _details(text: str | None) -> JobDetails | None:
    if not text:
        return None
    try:
        return JobDetails.from_json(json.loads(text))
    except ValueError:  # a value this version cannot read must not cost the record
        return None


def row_key(row: Mapping[str, Any]) -> tuple[str, int]:
    """A row's primary key ``(id, attempt)``: batches are written in its order."""
    return row["id"], row["attempt"]


def record_to_row(record: RunRecord) -> dict[str, Any]:
    row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name != "job"}
    row["status"] = record.status.value
    row["trigger"] = record.trigger.value
    row["details"] = (
        None if record.job is None else json.dumps(record.job.to_json(), separators=(",", ":"))
    )
    return row
