"""Jobs that crontask's usual ways of finding things miss: a running Job whose CronTask was
deleted with ``--cascade=orphan`` and applied again (a new uid) while crontask was down, and a
Job with ``manualSelector: true``, whose pods carry no ``controller-uid`` label."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.core.runs import RunRecord, RunStatus
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, condition, jobs
from tests.jobs.test_resource_jobs import cron_task, run_now, status
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl

pytestmark = pytest.mark.usefixtures("real_crd")


def _record(instance: Crontask, task: str, run_id: str) -> RunRecord:
    return next(r for r in instance.runs(task) if r.id == run_id)


@pytest.mark.slow
def test_a_job_orphaned_and_its_crontask_applied_again_is_adopted(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The record names the Job by uid: that Job is the run's, whatever controls it now (the
    garbage collector dropped its ownerReference). It is followed to its end, and Forbid counts
    it while it runs: a run asked for meanwhile starts no second Job beside it."""
    gate = Gate(tmp_path)
    instance = crontask("--kubernetes")
    manifest = cron_task("orc", gate.wait("echo orc-done"), concurrencyPolicy="Forbid")
    kubectl("apply", "-f", "-", stdin=manifest)
    wait_for("Ready", lambda: status(emulator, "orc").get("observedGeneration") == 1)
    run_now(kubectl, "orc", "1")
    (running,) = wait_for(
        "the Job's uid in the running record",
        lambda: [
            r
            for r in instance.runs("default/orc")
            if r.status is RunStatus.RUNNING and r.job is not None and r.job.uid
        ],
    )
    assert running.job is not None
    uid = running.job.uid
    kubectl("delete", "ct", "orc", "--cascade=orphan")
    wait_for(
        "the Job orphaned",
        lambda: [
            j
            for j in jobs(emulator, "default.orc")
            if j["metadata"]["uid"] == uid and not j["metadata"].get("ownerReferences")
        ],
    )
    instance.stop(signal.SIGKILL)
    kubectl("apply", "-f", "-", stdin=manifest)  # the same name, a new uid
    instance.start()
    wait_for("Ready again", lambda: status(emulator, "orc").get("observedGeneration") == 1)
    instance.wait_log("run adopted")
    run_now(kubectl, "orc", "2")

    def settled() -> bool:
        runs = instance.runs("default/orc")
        forbidden = [r for r in runs if r.reason == "ConcurrencyForbid"]
        second = len(jobs(emulator, "default.orc")) > 1
        return (
            bool(forbidden)
            or second
            or _record(instance, "default/orc", running.id).status.finished
        )

    wait_for("the second run skipped, or started, or the first ended", settled)
    now = _record(instance, "default/orc", running.id)
    assert (now.status, now.reason) == (RunStatus.RUNNING, None), now.message
    assert [j["metadata"]["name"] for j in jobs(emulator, "default.orc")] == [running.job.name]
    assert [r.reason for r in instance.runs("default/orc") if r.id != running.id] == [
        "ConcurrencyForbid"
    ]

    gate.open()
    done = wait_for(
        "the adopted run to end",
        lambda: [
            r for r in instance.runs("default/orc") if r.id == running.id and r.status.finished
        ],
    )
    assert [(r.status, r.exit_code, r.output) for r in done] == [
        (RunStatus.SUCCEEDED, 0, "orc-done\n")
    ]


def test_a_job_with_a_manual_selector_tells_its_output(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    """With ``manualSelector`` the API server adds no ``controller-uid`` label to the pods:
    crontask finds them by its own run-id label, and the Job's ownership of them."""
    instance = crontask("--kubernetes")
    document: dict[str, Any] = yaml.safe_load(cron_task("picky", "echo picked; exit 3"))
    spec = document["spec"]["job"]["spec"]
    spec["manualSelector"] = True
    spec["selector"] = {"matchLabels": {"app": "picky"}}
    spec["template"]["metadata"] = {"labels": {"app": "picky"}}
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document))
    wait_for("Ready", lambda: status(emulator, "picky").get("observedGeneration") == 1)
    run_now(kubectl, "picky", "1")
    wait_for("the Job failed", lambda: [j for j in jobs(emulator, "default.picky") if condition(j)])
    (record,) = wait_for(
        "the run recorded",
        lambda: [r for r in instance.runs("default/picky") if r.status.finished],
    )
    assert record.job is not None
    assert (record.status, record.exit_code, record.output) == (RunStatus.FAILED, 3, "picked\n")
    assert record.job.pod is not None
    assert record.job.log_error is None
