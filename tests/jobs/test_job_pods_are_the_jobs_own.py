"""A run's output, exit code, pod and node come from the pods its Job controls, not from any pod
that carries the Job's ``batch.kubernetes.io/controller-uid`` label: anyone who may create a
pod in the Job's namespace can give one that label (the uid is on the Job and its pods for
all to read), and the newest such pod told the run's story. A pod is the Job's when its
``controller`` ownerReference is the Job's uid, which the Job controller sets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from reconciler.core.jobs import RUN_LABEL
from reconciler.core.runs import RunStatus
from reconciler.runner.job import JobRunner
from reconciler.sources.kubernetes_jobs import CONTROLLER_UID, JobWatch
from tests.helpers import wait_for
from tests.jobs.conftest import Gate
from tests.jobs.test_job_runner import job_task, record
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve
from tests.k8s.emulator.manifests import container
from tests.k8s.emulator.manifests import job as emulator_job


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()  # runs nothing: the test makes the pods


@pytest.fixture
def running_emulator() -> Iterator[Emulator]:
    yield from serve(run_jobs=True, pod_backoff=0.05, max_grace_period=0.5)


def planted(name: str, uid: str, script: str = "true", **meta: Any) -> dict[str, Any]:
    """A bare pod somebody made with the Job's label (and whatever ``meta`` adds)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {CONTROLLER_UID: uid}, **meta},
        "spec": {"restartPolicy": "Never", "containers": [container(script)]},
    }


def reference(obj: Any, *, controller: bool) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
    }


def test_the_pods_of_a_job_are_those_it_controls(quiet_emulator: Emulator, tmp_path: Path) -> None:
    kubeconfig = quiet_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    job = quiet_emulator.create(emulator_job("backup", labels={RUN_LABEL: "x"}))
    other = quiet_emulator.create(emulator_job("other", labels={RUN_LABEL: "y"}))
    uid = job["metadata"]["uid"]
    owned = planted("backup-abcde", uid, ownerReferences=[reference(job, controller=True)])
    quiet_emulator.create(owned)
    quiet_emulator.create(planted("zz-labelled", uid))
    quiet_emulator.create(
        planted("zz-not-controller", uid, ownerReferences=[reference(job, controller=False)])
    )
    quiet_emulator.create(
        planted("zz-another-jobs", uid, ownerReferences=[reference(other, controller=True)])
    )

    async def main() -> None:
        watch = JobWatch(api, ["default"])
        try:
            pods = await watch.pods("default", uid)
            assert [p["metadata"]["name"] for p in pods] == ["backup-abcde"]
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()


def test_a_pod_made_with_the_jobs_label_does_not_tell_the_runs_outcome(
    running_emulator: Emulator, tmp_path: Path
) -> None:
    """The Job fails with exit code 3 and says so in its log; a pod somebody made meanwhile with
    its label, newer (and named to sort last within the same second), succeeded."""
    kubeconfig = running_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    core: Any = client.CoreV1Api(api)
    gate = Gate(tmp_path)
    spec = {"containers": [container(gate.wait("echo real; exit 3"))]}
    task = job_task(job={"spec": {"backoffLimit": 0, "template": {"spec": spec}}})
    at = datetime.now(UTC).replace(microsecond=0)

    async def main() -> None:
        watch = JobWatch(api, ["default"])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        try:
            runner = JobRunner(watch, namespace="default", verify_seconds=0.05)
            running = asyncio.ensure_future(runner.attempt(task, record(at=at)).run())

            def job_pod() -> Any:
                return [p for p in running_emulator.objects("pods") if p["status"].get("phase")]

            (pod,) = await asyncio.to_thread(wait_for, "the Job's pod", job_pod)
            uid = pod["metadata"]["labels"][CONTROLLER_UID]
            await asyncio.to_thread(
                core.create_namespaced_pod,
                "default",
                planted("zzz-planted", uid, "echo planted; exit 0"),
            )

            def planted_done() -> bool:
                found = [
                    p
                    for p in running_emulator.objects("pods")
                    if p["metadata"]["name"] == "zzz-planted"
                ]
                return bool(found) and found[0]["status"].get("phase") == "Succeeded"

            await asyncio.to_thread(wait_for, "the planted pod done", planted_done)
            gate.open()
            outcome = await asyncio.wait_for(running, 20)
            assert outcome.status is RunStatus.FAILED
            assert (outcome.exit_code, outcome.output) == (3, "real\n")
            assert outcome.job is not None
            assert outcome.job.pod == pod["metadata"]["name"]
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()
