"""Job tasks from CronTask resources: Jobs owned by their CronTask, status and Events where
people look (``kubectl get jobs,crontasks``), and deleting the CronTask."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.core.runs import RunStatus
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, condition, jobs, trigger, write_task
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl

pytestmark = pytest.mark.usefixtures("real_crd")


def cron_task(name: str, script: str, **spec: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "crontask.dev/v1alpha1",
            "kind": "CronTask",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "schedule": "0 0 1 1 *",
                **spec,
                "job": {
                    "metadata": {"labels": {"team": "ops"}},
                    "spec": {
                        "backoffLimit": 0,
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "main",
                                        "image": "busybox",
                                        "command": ["sh", "-c", script],
                                    }
                                ]
                            }
                        },
                    },
                },
            },
        }
    )


def status(emulator: Emulator, name: str) -> dict[str, Any]:
    for obj in emulator.objects("ct"):
        if obj["metadata"]["name"] == name:
            found: dict[str, Any] = obj.get("status") or {}
            return found
    return {}


def run_now(kubectl: Kubectl, name: str, value: str) -> None:
    kubectl("annotate", "ct", name, f"crontask.dev/run-now={value}", "--overwrite")


@pytest.mark.slow
def test_a_crontasks_jobs_are_owned_reported_and_go_with_it(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl, tmp_path: Path
) -> None:
    gate = Gate(tmp_path)
    instance = crontask("--kubernetes")
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=cron_task("report", gate.wait("echo 'ERROR: no route to db'; exit 2")),
    )
    wait_for("Ready", lambda: status(emulator, "report").get("observedGeneration") == 1)
    run_now(kubectl, "report", "1")

    (job,) = wait_for("a Job", lambda: jobs(emulator, "default.report"))
    (crontask_obj,) = emulator.objects("ct")
    meta = job["metadata"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "crontask.dev/v1alpha1",
            "kind": "CronTask",
            "name": "report",
            "uid": crontask_obj["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["team"] == "ops"
    assert meta["namespace"] == "default"
    # While it runs, status.active names the Job as CronJob's does, and lastRun says which.
    # The entry names the Job from the moment crontask creates it, and gains its uid once
    # the API server has answered: wait for the complete reference.
    active = wait_for(
        "status.active with the Job's uid",
        lambda: [a for a in status(emulator, "report").get("active") or () if "uid" in a],
    )
    assert active == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "namespace": "default",
            "name": meta["name"],
            "uid": meta["uid"],
        }
    ]
    assert status(emulator, "report")["lastRun"]["job"] == {
        "name": meta["name"],
        "uid": meta["uid"],
    }
    table = kubectl("get", "jobs,crontasks")
    assert meta["name"] in table
    assert "running" in table

    gate.open()
    wait_for(
        "failed", lambda: status(emulator, "report").get("lastRun", {}).get("result") == "failed"
    )
    final = status(emulator, "report")
    assert final["active"] == []
    assert final["activeCount"] == 0
    assert final["lastRun"]["exitCode"] == 2
    table = kubectl("get", "jobs,crontasks")
    assert "failed" in table
    assert "Failed" in table
    events = wait_for(
        "a RunFailed Event",
        lambda: [e for e in emulator.objects("events") if e.get("reason") == "RunFailed"],
    )
    assert events[0]["message"] == (
        f"run failed: BackoffLimitExceeded (Job {meta['name']}, exit code 2): ERROR: no route to db"
    )

    kubectl("delete", "ct", "report")
    wait_for("its Jobs gone with it", lambda: not jobs(emulator, "default.report"))
    (record,) = instance.runs("default/report")
    assert record.status is RunStatus.FAILED


def test_deleting_a_crontask_while_its_job_runs(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    instance = crontask("--kubernetes")
    kubectl("apply", "-f", "-", stdin=cron_task("doomed", "sleep 60"))
    wait_for("Ready", lambda: status(emulator, "doomed").get("observedGeneration") == 1)
    run_now(kubectl, "doomed", "1")
    wait_for(
        "a live Job", lambda: [j for j in jobs(emulator, "default.doomed") if condition(j) is None]
    )
    kubectl("delete", "ct", "doomed")
    wait_for("the Job gone (garbage-collected)", lambda: not jobs(emulator, "default.doomed"))
    (record,) = wait_for(
        "the run recorded",
        lambda: [r for r in instance.runs("default/doomed") if r.status.finished],
    )
    assert (record.status, record.reason) == (RunStatus.FAILED, "JobDeleted")


def test_a_crontasks_jobs_stay_in_its_namespace(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    crontask("--kubernetes")
    document = yaml.safe_load(cron_task("elsewhere", "true"))
    document["spec"]["job"]["namespace"] = "kube-system"
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document))

    def ready() -> dict[str, Any]:
        for item in status(emulator, "elsewhere").get("conditions") or []:
            if item["type"] == "Ready":
                return dict(item)
        return {}

    wait_for("InvalidSpec", lambda: ready().get("reason") == "InvalidSpec")
    assert "spec.job.namespace" in ready()["message"]


@pytest.mark.slow
@pytest.mark.parametrize("job_namespace", [None, "batch"], ids=["same-namespace", "elsewhere"])
def test_a_crontask_that_loses_its_key_owns_none_of_the_winners_jobs(
    crontask: Callable[..., Crontask],
    emulator: Emulator,
    kubectl: Kubectl,
    tmp_path: Path,
    job_namespace: str | None,
) -> None:
    """A folder task and a CronTask both declare default/x; the folder's definition wins (its
    location sorts first). Its Job has no ownerReference to the losing object: deleting that
    object takes the running Job with it no more than, with its Jobs in another namespace
    (--job-namespace), a cross-namespace owner would have the garbage collector delete the Job
    as soon as it is made."""
    gate = Gate(tmp_path)
    extra = ["--job-namespace", job_namespace] if job_namespace else []
    instance = crontask("--kubernetes", *extra)
    write_task(instance.tasks, "x", gate.wait("echo from-the-folder"))
    instance.wait_log("task=default/x")
    kubectl("apply", "-f", "-", stdin=cron_task("x", "echo from-the-crontask"))
    instance.wait_log("defined more than once")
    run = trigger(instance, "default/x")
    (job,) = wait_for(
        "a live Job", lambda: [j for j in jobs(emulator, "default.x") if not condition(j)]
    )
    assert job["metadata"]["namespace"] == (job_namespace or "default")
    assert not job["metadata"].get("ownerReferences")

    kubectl("delete", "ct", "x")  # the emulator's collector acts before the DELETE answers
    assert [j["metadata"]["uid"] for j in jobs(emulator, "default.x")] == [job["metadata"]["uid"]]
    gate.open()
    (record,) = wait_for(
        "the run recorded",
        lambda: [r for r in instance.runs("default/x") if r.id == run["id"] and r.status.finished],
    )
    assert (record.status, record.output) == (RunStatus.SUCCEEDED, "from-the-folder\n")


@pytest.mark.slow
def test_jobs_kept_by_an_orphaning_delete_are_not_cleaned_up(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    """``kubectl delete ct --cascade=orphan`` keeps the CronTask's Jobs (the garbage collector
    drops their ownerReferences and leaves them): crontask does not delete them as a removed
    task's. A folder task's removed Jobs still go (``witness``): once its Job is deleted, the
    clean-up that could have deleted the orphans has run (it goes through the tasks in order,
    and the CronTask was removed before the witness's run ended)."""
    instance = crontask("--kubernetes")
    write_task(instance.tasks, "witness", "true", successfulRunsHistoryLimit=0)
    kubectl("apply", "-f", "-", stdin=cron_task("keep", "echo kept"))
    wait_for("Ready", lambda: status(emulator, "keep").get("observedGeneration") == 1)
    run_now(kubectl, "keep", "1")
    (job,) = wait_for(
        "a finished Job", lambda: [j for j in jobs(emulator, "default.keep") if condition(j)]
    )
    wait_for("recorded", lambda: [r for r in instance.runs("default/keep") if r.status.finished])

    kubectl("delete", "ct", "keep", "--cascade=orphan")
    instance.wait_log("task removed")
    (orphan,) = jobs(emulator, "default.keep")
    assert not orphan["metadata"].get("ownerReferences")  # as the real collector leaves it
    trigger(instance, "default/witness")
    wait_for("the witness's Job cleaned up", lambda: "task=default/witness" in _deleted(instance))
    assert [j["metadata"]["uid"] for j in jobs(emulator, "default.keep")] == [
        job["metadata"]["uid"]
    ]
    assert "task=default/keep" not in _deleted(instance)


@pytest.mark.slow
def test_the_jobs_of_a_crontask_that_lost_its_key_are_left_alone(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    """A CronTask's finished Job, then a folder task of the same key that wins it: the Job,
    still controlled by the CronTask, is not the folder task's to count or to clean up (its
    successfulRunsHistoryLimit: 0 deletes its own Job, and that one only)."""
    instance = crontask("--kubernetes")
    kubectl("apply", "-f", "-", stdin=cron_task("lost", "echo from-the-crontask"))
    wait_for("Ready", lambda: status(emulator, "lost").get("observedGeneration") == 1)
    run_now(kubectl, "lost", "1")
    (theirs,) = wait_for(
        "a finished Job", lambda: [j for j in jobs(emulator, "default.lost") if condition(j)]
    )
    write_task(instance.tasks, "lost", "echo from-the-folder", successfulRunsHistoryLimit=0)
    instance.wait_log("defined more than once")
    run = trigger(instance, "default/lost")
    (record,) = wait_for(
        "the folder task's run recorded",
        lambda: [
            r for r in instance.runs("default/lost") if r.id == run["id"] and r.status.finished
        ],
    )
    assert record.job is not None
    wait_for("its own Job cleaned up", lambda: record.job and record.job.name in _deleted(instance))
    assert [j["metadata"]["uid"] for j in jobs(emulator, "default.lost")] == [
        theirs["metadata"]["uid"]
    ]


def _deleted(instance: Crontask) -> str:
    return "\n".join(line for line in instance.log().splitlines() if "job deleted" in line)
