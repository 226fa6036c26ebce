"""The Kubernetes Event a run record is worth, if any: a pure derivation.

Split from ``status`` (what a CronTask's ``.status`` says), which it shares nothing with but
the object: an Event tells of one run as it happens, where the status sums up all of them.
:func:`run_event` never reads a clock or does I/O; ``sinks.kubernetes_events`` writes what it
returns.

- A failed or timed-out run is a ``Warning`` ``RunFailed``: for a run of a Job, why and where
  to look (the Job, its exit code, the first line of its log tail, cut to
  :data:`EVENT_LOG_LINE` characters, its control characters made spaces), readable after the
  next run has started.
- A skipped slot is ``SlotSkipped``, ``Warning`` unless the skip is the task's own choice (a
  ``Forbid`` task's run still going). Its message has no ids or timestamps, so that repeats
  aggregate into one Event with a count. A manual run skipped says ``run-now skipped: ...``.
- A manual run's first attempt starting is a ``Normal`` ``RunStarted``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

from reconciler.core.job_pods import clean
from reconciler.core.runs import RunRecord, RunStatus, Trigger


@dataclasses.dataclass(frozen=True, slots=True)
class EventSpec:
    type: str  # Normal | Warning
    reason: str
    message: str


# Skip messages without ids or timestamps, so repeats aggregate into one Event with a count.
_SKIPS = {
    "ConcurrencyForbid": ("Normal", "a slot was skipped: the previous run was still running"),
    "MissedDeadline": ("Warning", "a slot was skipped: it could not start before its deadline"),
    "Superseded": ("Warning", "missed slots were skipped (crontask was down or busy)"),
    "TooManyRuns": ("Warning", "a slot was skipped: too many runs in progress"),
    "ReplaceBlocked": ("Warning", "a slot was skipped: the Job it replaces could not be deleted"),
    "PeriodRan": ("Normal", "a slot was skipped: its period ran before the task changed"),
}
# A manual run skipped is no slot skipped: the person who asked for it reads why.
_MANUAL_SKIPS = {
    "ConcurrencyForbid": "run-now skipped: the previous run is still running",
    "TooManyRuns": "run-now skipped: too many runs in progress",
    "ReplaceBlocked": "run-now skipped: the Job it replaces could not be deleted",
}


def run_event(record: RunRecord) -> EventSpec | None:
    """The Event a run record is worth, if any."""
    if record.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
        what = "timed out" if record.status is RunStatus.TIMED_OUT else "failed"
        if record.job is not None:
            return EventSpec("Warning", "RunFailed", _job_failed(record, what))
        detail = f"exit code {record.exit_code}" if record.exit_code is not None else ""
        detail = detail or record.reason or ""
        return EventSpec("Warning", "RunFailed", f"run {what}" + (f": {detail}" if detail else ""))
    if record.status is RunStatus.SKIPPED:
        reason = record.reason or ""
        kind, text = _SKIPS.get(reason, ("Normal", f"a slot was skipped: {record.reason}"))
        if record.trigger is Trigger.MANUAL:
            text = _MANUAL_SKIPS.get(reason, f"run-now skipped: {record.reason}")
        return EventSpec(kind, "SlotSkipped", text)
    if (
        record.status is RunStatus.RUNNING
        and record.trigger is Trigger.MANUAL
        and record.attempt == 1
    ):
        return EventSpec("Normal", "RunStarted", f"manual run {record.id} started")
    return None


EVENT_LOG_LINE = 200  # characters of the log's line an Event quotes


def _job_failed(record: RunRecord, what: str) -> str:
    """``run failed: BackoffLimitExceeded (Job J, exit code 3): <first line of the log tail>``:
    why the run failed and where to look, readable after the next run has started. The line
    is cut to :data:`EVENT_LOG_LINE` characters."""
    assert record.job is not None
    where = [f"Job {record.job.name}"]
    if record.exit_code is not None:
        where.append(f"exit code {record.exit_code}")
    text = f"run {what}: {record.reason or 'Failed'} ({', '.join(where)})"
    line = first_log_line(record.output)
    return f"{text}: {line}" if line else text


# A terminal's escape sequences whole (CSI: colours, cursor moves; OSC: titles, links, ended by
# BEL or ST; their 8-bit forms): a colour reset alone left "[0m" as the line.
_ESCAPES: Final = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
)


def first_log_line(output: str) -> str:
    """The first non-empty line of a log tail, past the truncation marker, bounded, without a
    terminal's escape sequences, and its other control characters (a bell; the log is the
    program's to write, and ``kubectl describe`` prints the Event to a terminal) made spaces
    (``job_pods.clean``)."""
    for raw in output.splitlines():
        line = clean(_ESCAPES.sub("", raw[: EVENT_LOG_LINE * 4]), EVENT_LOG_LINE)
        if line and not (line.startswith("[... ") and line.endswith(" truncated ...]")):
            return line
    return ""
