"""A message's summary is a sentence: a run that timed out "timed out" (not the field's
``timedOut``), one that has no exit code says its reason alone (``interrupted: (ProcessDied)``
was a colon before nothing), and one with neither says its status once (``failed: failed``)."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.core.runs import RunStatus
from reconciler.sinks.notify_payload import summary
from tests.notify.test_notifier import T0, finished


@pytest.mark.parametrize(
    ("status", "exit_code", "reason", "said"),
    [
        (RunStatus.FAILED, 3, "NonZeroExit", "ops/b failed: exit code 3 (NonZeroExit)"),
        (
            RunStatus.TIMED_OUT,
            143,
            "DeadlineExceeded",
            "ops/b timed out: exit code 143 (DeadlineExceeded)",
        ),
        (RunStatus.TIMED_OUT, None, "DeadlineExceeded", "ops/b timed out (DeadlineExceeded)"),
        (RunStatus.INTERRUPTED, None, "ProcessDied", "ops/b interrupted (ProcessDied)"),
        (RunStatus.FAILED, 1, None, "ops/b failed: exit code 1"),
        (RunStatus.FAILED, None, None, "ops/b failed"),
    ],
)
def test_the_summary_of_a_run_that_ended_failing(
    status: RunStatus, exit_code: int | None, reason: str | None, said: str
) -> None:
    record = dataclasses.replace(
        finished(status, T0, key="ops/b"), exit_code=exit_code, reason=reason
    )
    assert summary("failed", "ops/b", record) == said
