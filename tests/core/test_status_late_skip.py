"""The Last Result a CronTask's status shows is the run of the latest slot seen: a skip told
late (its record kept while the store did not answer, told once written, after later runs)
does not take it back to an older slot. A skip of the latest slot still shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.core.status import RunSummary

SLOT = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def record(at: datetime, status: RunStatus) -> RunRecord:
    ended = None if status is RunStatus.RUNNING else at + timedelta(seconds=1)
    return RunRecord(
        id=run_id("ops/a", at),
        task="ops/a",
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=status,
        attempt=1,
        started_at=None if status is RunStatus.SKIPPED else at,
        finished_at=ended,
    )


def test_a_skip_of_an_older_slot_told_late_is_not_the_last_result() -> None:
    newer = record(SLOT + timedelta(minutes=1), RunStatus.SUCCEEDED)
    late_skip = record(SLOT, RunStatus.SKIPPED)
    summary = RunSummary().observe(newer).observe(late_skip)
    assert summary.latest == newer


def test_a_skip_of_a_later_slot_is_the_last_result() -> None:
    older = record(SLOT, RunStatus.SUCCEEDED)
    skip = record(SLOT + timedelta(minutes=1), RunStatus.SKIPPED)
    assert RunSummary().observe(older).observe(skip).latest == skip


def test_a_skip_never_hides_a_running_run() -> None:
    running = record(SLOT, RunStatus.RUNNING)
    skip = record(SLOT + timedelta(minutes=1), RunStatus.SKIPPED)
    assert RunSummary().observe(running).observe(skip).latest == running


def test_a_failure_of_an_older_slot_told_after_still_shows() -> None:
    # Only skips wait: a run's own end (a long run of an older slot ending last) is news.
    newer = record(SLOT + timedelta(minutes=1), RunStatus.SUCCEEDED)
    failed = record(SLOT, RunStatus.FAILED)
    assert RunSummary().observe(newer).observe(failed).latest == failed
