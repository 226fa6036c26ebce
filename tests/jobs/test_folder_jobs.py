"""Job tasks from a folder: one Job per run, its outcome, log and details recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.host import usable_cores
from reconciler.sources.limits import PARALLEL_MIN_FILES
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, condition, jobs, trigger, write_task
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl


def finished_runs(instance: Crontask, task: str) -> list[RunRecord]:
    return [r for r in instance.runs(task) if r.status.finished]


@pytest.mark.slow
def test_success_and_failure_with_reason_log_and_details(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    instance = crontask()
    write_task(instance.tasks, "ok", 'echo "hello from $CRONTASK_RUN_ID attempt $CRONTASK_ATTEMPT"')
    write_task(instance.tasks, "bad", "echo 'boom: disk full'; echo more; exit 3")
    instance.wait_log("task=default/bad")
    ok_run = trigger(instance, "default/ok")
    bad_run = trigger(instance, "default/bad")

    ok = wait_for("ok finished", lambda: finished_runs(instance, "default/ok"))[0]
    bad = wait_for("bad finished", lambda: finished_runs(instance, "default/bad"))[0]
    assert ok.id == ok_run["id"]
    assert bad.id == bad_run["id"]
    assert (ok.status, ok.exit_code, ok.reason) == (RunStatus.SUCCEEDED, 0, None)
    assert ok.output == f"hello from {ok.id} attempt 1\n"  # the CRONTASK_* variables reach the pod
    assert ok.job is not None
    assert ok.job.uid
    assert ok.job.pod
    assert ok.job.node == "emulator-node-1"
    assert [(c.name, c.exit_code, c.reason) for c in ok.job.containers] == [
        ("main", 0, "Completed")
    ]
    assert ok.job.completed_at is not None

    assert (bad.status, bad.exit_code, bad.reason) == (RunStatus.FAILED, 3, "BackoffLimitExceeded")
    assert bad.output == "boom: disk full\nmore\n"
    assert bad.message is not None
    assert "exit code 3 Error" in bad.message
    assert bad.job is not None
    assert bad.job.log_error is None

    (job,) = jobs(emulator, "default.ok")
    meta = job["metadata"]
    slot = ok.scheduled_at
    # A manual run's slot has microseconds: they are in the name, so two never share it.
    assert meta["name"] == f"ok-{int(slot.timestamp())}-m{slot.astimezone(UTC).microsecond:06d}"
    assert meta["labels"]["crontask.dev/run-id"] == ok.id
    assert meta["annotations"]["crontask.dev/task"] == "default/ok"
    assert meta["annotations"]["crontask.dev/scheduled-time"] == slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "ownerReferences" not in meta  # a folder task has no object to own its Jobs
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert condition(job) == "Complete"

    table = kubectl("get", "jobs", "-l", "crontask.dev/task")
    assert meta["name"] in table
    assert "Complete" in table
    assert "Failed" in kubectl("get", "jobs", "-l", "crontask.dev/task=default.bad")


@pytest.mark.skipif(usable_cores() < 2, reason="reading ahead takes a second core")
def test_a_large_folder_of_job_tasks_is_read_ahead_before_the_cluster_is_connected(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    """Connecting to the cluster starts a thread, and reading ahead forks only from a process
    without one: the folder is read first."""
    folder = tmp_path / "tasks"  # the fixture's folder, filled before crontask starts
    for i in range(PARALLEL_MIN_FILES):
        write_task(folder, f"t{i}", "true")
    instance = crontask()
    read = f"files={PARALLEL_MIN_FILES} of={PARALLEL_MIN_FILES} workers={usable_cores()}"
    assert f'msg="files read ahead" {read}' in instance.log()
    started = next(line for line in instance.log().splitlines() if "crontask started" in line)
    assert f"tasks={PARALLEL_MIN_FILES}" in started
