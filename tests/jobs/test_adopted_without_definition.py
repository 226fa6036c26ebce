"""A Job whose CronTask has no definition in force when the restarted crontask adopts its run
(the CronTask made invalid while crontask was down: the last good definition was only in the
memory of the crontask that stopped) is still this run's: its record names it by uid, and the
CronTask that controls it is the task's own (same namespace and name). The run follows it to its
real end; it is never recorded ``interrupted`` while the Job lives."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.core.runs import RunStatus
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, jobs
from tests.jobs.test_resource_jobs import cron_task, run_now, status
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl

pytestmark = pytest.mark.usefixtures("real_crd")


@pytest.mark.slow
def test_a_job_adopted_while_its_crontask_is_invalid_is_followed_to_its_end(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl, tmp_path: Path
) -> None:
    gate = Gate(tmp_path)
    instance = crontask("--kubernetes")
    manifest = cron_task("long", gate.wait("echo long-done"))
    kubectl("apply", "-f", "-", stdin=manifest)
    wait_for("Ready", lambda: status(emulator, "long").get("observedGeneration") == 1)
    run_now(kubectl, "long", "1")
    (running,) = wait_for(
        "the Job's uid in the running record",
        lambda: [
            r
            for r in instance.runs("default/long")
            if r.status is RunStatus.RUNNING and r.job is not None and r.job.uid
        ],
    )
    assert running.job is not None
    assert instance.stop(signal.SIGTERM) == 0  # detaches: the Job runs on

    # While crontask is down, the CronTask gets a schedule that never fires: invalid.
    invalid = yaml.safe_load(manifest)
    invalid["spec"]["schedule"] = "0 0 31 2 *"
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(invalid))
    instance.start()
    wait_for(
        "the CronTask reported invalid",
        lambda: status(emulator, "long").get("observedGeneration") == 2,
    )
    instance.wait_log("run adopted")
    # Adopted; the Job is live, so the record must still be running (not interrupted).
    (job,) = jobs(emulator, "default.long")
    assert job["metadata"]["uid"] == running.job.uid

    gate.open()
    (done,) = wait_for(
        "the adopted run to end",
        lambda: [
            r for r in instance.runs("default/long") if r.id == running.id and r.status.finished
        ],
    )
    assert (done.status, done.reason, done.exit_code, done.output) == (
        RunStatus.SUCCEEDED,
        None,
        0,
        "long-done\n",
    ), done.message
    assert done.job is not None
    assert done.job.uid == running.job.uid
