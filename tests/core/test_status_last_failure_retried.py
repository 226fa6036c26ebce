"""``lastFailureTime`` of a CronTask whose runs retry: as the metric's last failure, the end
of a run that ended failed. A failed attempt that the dispatcher retries (the status reporter
hears it as a ``RetriedAttempt``) has not ended its run; if its retry never comes (abandoned:
skipped, or cut short by crontask's shutdown), the run ended with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.runs import RetriedAttempt, RunRecord, RunStatus, Trigger, run_id
from reconciler.core.status import SHUTDOWN_REASON, RunSummary

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "ops/nightly"


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def attempt(n: int, started: int | None) -> RunRecord:
    return RunRecord(
        id=run_id(KEY, T0),
        task=KEY,
        scheduled_at=T0,
        trigger=Trigger.SCHEDULE if n == 1 else Trigger.RETRY,
        status=RunStatus.RUNNING,
        attempt=n,
        started_at=None if started is None else at(started),
    )


def retried_first() -> tuple[RunSummary, RetriedAttempt]:
    first = attempt(1, 0)
    failed = RetriedAttempt.of(first.finish(RunStatus.FAILED, finished_at=at(10), exit_code=1))
    return RunSummary().observe(first).observe(failed), failed


def test_a_retried_attempt_is_not_the_last_failure() -> None:
    summary, failed = retried_first()
    assert summary.last_failure is None
    assert summary.latest == failed  # the Last Result column still shows it


@pytest.mark.parametrize(
    ("status", "last_failure"), [(RunStatus.SUCCEEDED, None), (RunStatus.FAILED, at(30))]
)
def test_the_retry_that_came_ends_the_run(status: RunStatus, last_failure: datetime) -> None:
    summary, _ = retried_first()
    second = attempt(2, 20)
    summary = summary.observe(second).observe(second.finish(status, finished_at=at(30)))
    assert summary.last_failure == last_failure


@pytest.mark.parametrize(
    ("status", "reason"),
    [(RunStatus.SKIPPED, "TaskChanged"), (RunStatus.INTERRUPTED, SHUTDOWN_REASON)],
)
def test_a_retry_that_never_comes_leaves_the_failure_before_it(
    status: RunStatus, reason: str
) -> None:
    summary, _ = retried_first()
    abandoned = attempt(2, None).finish(status, finished_at=at(40), reason=reason)
    assert summary.observe(abandoned).last_failure == at(10)
