"""A run record as every store keeps it: datetimes in UTC, text every back end can hold.

Pure functions, shared by every store so that what goes in cannot differ between them: each
store passes a record through :func:`normalized` before keeping it. The rules they apply are
the contract's (``base.py``): datetimes going in must be timezone-aware, coming out they are
in UTC; ``claim`` and ``complete`` replace what no back end can store in ``output`` and
``message``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from reconciler.core.runs import JobDetails, RunRecord

__all__ = ["normalized", "storable_text", "utc"]


def utc(value: datetime) -> datetime:
    """``value`` in UTC; ``ValueError`` if it is naive (a naive time is a bug upstream)."""
    if value.tzinfo is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def storable_text(text: str) -> str:
    """``text`` as every back end can store it: NUL becomes U+FFFD (PostgreSQL ``text`` cannot
    hold NUL) and lone surrogates (undecodable bytes smuggled through ``surrogateescape``)
    become ``?`` (UTF-8 cannot encode them). A command's output tail may contain both."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def normalized(record: RunRecord) -> RunRecord:
    """``record`` as every store keeps it: datetimes in UTC (the job's too), ``output`` and
    ``message`` through :func:`storable_text`. ``ValueError`` for naive datetimes or
    ``attempt < 1``."""
    if record.attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {record.attempt}")
    return dataclasses.replace(
        record,
        scheduled_at=utc(record.scheduled_at),
        started_at=None if record.started_at is None else utc(record.started_at),
        finished_at=None if record.finished_at is None else utc(record.finished_at),
        output=storable_text(record.output),
        message=None if record.message is None else storable_text(record.message),
        job=None if record.job is None else _job_in_utc(record.job),
    )


def _job_in_utc(job: JobDetails) -> JobDetails:
    if job.started_at is None and job.completed_at is None:
        return job
    return dataclasses.replace(
        job,
        started_at=None if job.started_at is None else utc(job.started_at),
        completed_at=None if job.completed_at is None else utc(job.completed_at),
    )
