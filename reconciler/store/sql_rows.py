"""A :class:`~reconciler.core.runs.RunRecord` as a row of the ``runs`` table, and back.

The record's fields are the table's columns, but for ``job``: its JSON in ``details``, read
back leniently (a value this version cannot read costs the record its job details, not the
record). The store's operations (``sql.py``) write and read whole records through these.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger

__all__ = ["MUTABLE", "record_to_row", "row_key", "row_to_record"]

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


def row_to_record(row: sa.Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        task=row.task,
        scheduled_at=row.scheduled_at,
        trigger=Trigger(row.trigger),
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
