"""A run waiting for its retry, under the real ``crontask run``: deleting its task or stopping
crontask cancels the retry at once, and the history says so."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reconciler.core.runs import RunStatus
from tests.e2e.conftest import Crontask
from tests.helpers import wait_for

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: flaky}
spec:
  schedule: "@every 1h"
  retry: {limit: 3, backoffSeconds: 86400}
  command: {args: ["sh", "-c", "exit 1"]}
"""


def first_failure(app: Crontask) -> str:
    def failed() -> str | None:
        for record in app.runs("default/flaky"):
            if record.attempt == 1 and record.status is RunStatus.FAILED:
                return record.id
        return None

    found = wait_for("the first attempt to fail", failed)
    assert found is not None
    return found


def attempts(app: Crontask, run: str) -> list[tuple[int, RunStatus, str | None]]:
    found = [r for r in app.runs("default/flaky") if r.id == run]
    return sorted((r.attempt, r.status, r.reason) for r in found)


@pytest.mark.slow
def test_sigterm_does_not_wait_for_a_retry_that_only_waits(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask(shutdown_grace="120s")
    (app.tasks / "flaky.yaml").write_text(TASK)
    app.wait_log("task added")
    assert app.proc is not None
    # A manual run, so that the test does not wait for the hourly slot.
    httpx.post(f"{app.server}/api/v1/tasks/default/flaky/runs").raise_for_status()
    run = first_failure(app)
    app.wait_log("retry scheduled")
    began = time.monotonic()
    assert app.stop() == 0
    # The grace is two minutes; nothing runs, so nothing needs it.
    assert time.monotonic() - began < 20
    assert attempts(app, run) == [
        (1, RunStatus.FAILED, "NonZeroExit"),
        (2, RunStatus.INTERRUPTED, "Shutdown"),
    ]


def test_deleting_a_task_cancels_its_pending_retry(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    path = app.tasks / "flaky.yaml"
    path.write_text(TASK)
    # Another task stays: the folder does not become empty (which would hold the removal).
    (app.tasks / "other.yaml").write_text(TASK.replace("flaky", "other"))
    app.wait_log("task added")
    httpx.post(f"{app.server}/api/v1/tasks/default/flaky/runs").raise_for_status()
    run = first_failure(app)
    app.wait_log("retry scheduled")
    path.unlink()
    app.wait_log("retry cancelled")
    wait_for(
        "the abandoned attempt's record",
        lambda: (
            attempts(app, run)
            == [
                (1, RunStatus.FAILED, "NonZeroExit"),
                (2, RunStatus.SKIPPED, "TaskRemoved"),
            ]
        ),
    )
