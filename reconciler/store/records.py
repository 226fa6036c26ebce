"""A run record as every store keeps it: datetimes in UTC, text every back end can hold.

Pure functions, shared by every store so that what goes in cannot differ between them: each
store passes a record through :func:`normalized` before keeping it. The rules they apply are
the contract's (``base.py``): datetimes going in must be timezone-aware, coming out they are
in UTC; ``claim`` and ``complete`` replace what no back end can store in ``output`` and
``message``.

A ``message`` is kept to :data:`MAX_MESSAGE_BYTES` of UTF-8: its head and its end, between them
a marker saying how many bytes were left out, worded as a run's cut output says it. A message
is one line about how an attempt ended, yet one names what it could not start, whose first
argument may be 32 768 characters (128 KiB of emoji), and a page of the run list holds 1 000
messages. ``output`` has its own bound, the runner's. Records stored whole before are read as
they are.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Final

from reconciler.core.runs import JobDetails, RunRecord, truncation_marker

__all__ = ["MAX_MESSAGE_BYTES", "bounded_message", "normalized", "storable_text", "utc"]

MAX_MESSAGE_BYTES: Final = 4096
"""The most of a run's ``message`` kept, in bytes of UTF-8, the marker of a cut one included."""
_MESSAGE_TAIL: Final = 1024  # bytes of a cut message's end kept after the marker


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


def bounded_message(text: str) -> str:
    """``text`` (storable) in at most :data:`MAX_MESSAGE_BYTES` of UTF-8: whole, or its head and
    its last :data:`_MESSAGE_TAIL` bytes, cut at character boundaries, with
    ``core.runs.truncation_marker`` between them, on the message's one line. The tail is kept
    as a message ends with why: ``cannot start {command}: {why}``. The marker's room is taken
    from the bound, so that a message cut once is kept as it is when its record is stored
    again."""
    data = text.encode("utf-8")
    if len(data) <= MAX_MESSAGE_BYTES:
        return text
    # Room for the marker as if all were cut: the count left out is never more.
    room = MAX_MESSAGE_BYTES - len(_marker(len(data)))
    # A character split by a cut is dropped whole ("ignore": only its bytes there are invalid).
    head = data[: room - _MESSAGE_TAIL].decode("utf-8", errors="ignore")
    tail = data[-_MESSAGE_TAIL:].decode("utf-8", errors="ignore")
    dropped = len(data) - len(head.encode("utf-8")) - len(tail.encode("utf-8"))
    return f"{head}{_marker(dropped)}{tail}"


def _marker(dropped: int) -> str:
    return f" {truncation_marker(dropped)} "


def normalized(record: RunRecord) -> RunRecord:
    """``record`` as every store keeps it: datetimes in UTC (the job's too), ``output`` and
    ``message`` through :func:`storable_text`, ``message`` bounded too (:func:`bounded_message`).
    ``ValueError`` for naive datetimes or ``attempt < 1``."""
    if record.attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {record.attempt}")
    return dataclasses.replace(
        record,
        scheduled_at=utc(record.scheduled_at),
        started_at=None if record.started_at is None else utc(record.started_at),
        finished_at=None if record.finished_at is None else utc(record.finished_at),
        output=storable_text(record.output),
        message=None if record.message is None else bounded_message(storable_text(record.message)),
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
