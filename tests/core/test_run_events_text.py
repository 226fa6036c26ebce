"""What a run's Event says, where its text comes from others: the first log line of a failed
Job's run is quoted on one line with its control characters (a terminal's escapes, a bell, a
carriage return) made spaces, as ``job_pods.clean`` does for what pods say; and a manual run
a ``Forbid`` task skipped says so, as no slot was involved."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.core.run_events import first_log_line, run_event
from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def ended(status: RunStatus, trigger: Trigger = Trigger.SCHEDULE, **kw: object) -> RunRecord:
    base = RunRecord(
        id="ops.backup.120000Z",
        task="ops/backup",
        scheduled_at=T0,
        trigger=trigger,
        status=RunStatus.RUNNING,
        started_at=T0,
    )
    return base.finish(status, finished_at=T0, **kw)  # type: ignore[arg-type]


def test_the_quoted_log_line_keeps_no_control_characters() -> None:
    output = "\x1b[31mERROR\x1b[0m disk\x07 full\r\x1b]0;owned\x07\n"
    failed = ended(
        RunStatus.FAILED,
        exit_code=1,
        reason="Failed",
        output=output,
        job=JobDetails("ops", "j", "u"),
    )
    event = run_event(failed)
    assert event is not None
    assert event.message == "run failed: Failed (Job j, exit code 1): ERROR disk full"
    assert all(c.isprintable() for c in event.message)
    assert first_log_line("\x1b\x07\n\u202eplain") == "plain"  # a line of controls only: none
    assert first_log_line("x" * 500) == "x" * 197 + "..."


@pytest.mark.parametrize(
    ("log", "line"),
    [
        ("\x1b[0m\nError: foo", "Error: foo"),  # a colour reset alone is no line
        ("\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\ ok", "click ok"),  # a link, ST-ended
        ("\x1b]0;PWNED\x07\x1b[31mRED\x1b[0m", "RED"),  # a title, BEL-ended
        ("a\x9b31mb", "ab"),  # the 8-bit CSI
    ],
)
def test_a_terminals_escape_sequences_leave_nothing_of_themselves(log: str, line: str) -> None:
    assert first_log_line(log) == line


def test_a_manual_run_skipped_by_forbid_is_no_skipped_slot() -> None:
    skipped = ended(RunStatus.SKIPPED, reason="ConcurrencyForbid")
    manual = ended(RunStatus.SKIPPED, Trigger.MANUAL, reason="ConcurrencyForbid")
    slot = run_event(skipped)
    asked = run_event(manual)
    assert slot is not None
    assert asked is not None
    assert slot.message == "a slot was skipped: the previous run was still running"
    assert (asked.type, asked.reason) == ("Normal", "SlotSkipped")
    assert asked.message == "run-now skipped: the previous run is still running"
