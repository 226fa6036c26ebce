"""``status.lastScheduleTime`` is the latest *scheduled* slot that ran, as a CronJob's: a
manual run (``kubectl create job --from=cronjob/...`` for a CronJob) never moves it, nor does
a retry of one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.runs import RunRecord, RunStatus, Trigger, manual_slot, run_id
from reconciler.core.status import RunSummary, StatusInputs, TaskState, derive_status

SLOT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
ASKED = manual_slot(datetime(2026, 11, 26, 14, 17, 3, 123456, tzinfo=UTC))
WHOLE = manual_slot(datetime(2026, 11, 26, 14, 17, 3, tzinfo=UTC))  # a clock reading of .000000


def record(at: datetime, trigger: Trigger, attempt: int = 1) -> RunRecord:
    return RunRecord(
        id=run_id("default/job", at),
        task="default/job",
        scheduled_at=at,
        trigger=trigger,
        status=RunStatus.SUCCEEDED,
        attempt=attempt,
        started_at=at,
        finished_at=at + timedelta(seconds=1),
    )


@pytest.mark.parametrize(
    ("later", "expected"),
    [
        (record(ASKED, Trigger.MANUAL), SLOT),
        (record(WHOLE, Trigger.MANUAL), SLOT),
        (record(ASKED, Trigger.RETRY, attempt=2), SLOT),  # a manual run's retry
        (record(SLOT + timedelta(hours=11), Trigger.SCHEDULE), SLOT + timedelta(hours=11)),
        (record(SLOT + timedelta(hours=11), Trigger.CATCHUP), SLOT + timedelta(hours=11)),
        (record(SLOT + timedelta(hours=1), Trigger.RETRY, 2), SLOT + timedelta(hours=1)),
    ],
    ids=["manual", "manual-whole-second", "manual-retry", "schedule", "catchup", "retry"],
)
def test_only_scheduled_slots_move_last_schedule_time(later: RunRecord, expected: datetime) -> None:
    runs = RunSummary().observe(record(SLOT, Trigger.SCHEDULE)).observe(later)
    assert runs.last_schedule == expected
    status = derive_status({}, StatusInputs(1, TaskState(scheduled=True), runs), SLOT)
    assert status["lastScheduleTime"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_manual_run_alone_sets_no_last_schedule_time() -> None:
    runs = RunSummary().observe(record(ASKED, Trigger.MANUAL))
    assert runs.last_schedule is None
    assert runs.latest is not None  # still the lastRun
    assert runs.latest.trigger is Trigger.MANUAL
    status = derive_status({}, StatusInputs(1, TaskState(scheduled=True), runs), SLOT)
    assert "lastScheduleTime" not in status
    assert status["lastRun"]["id"] == run_id("default/job", ASKED)
