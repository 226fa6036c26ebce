"""A failed run of a parallel Job tells the story of the pod that failed: its exit code, its
containers and its log, not those of a pod of the same Job that succeeded.

The Job (``completions: 2``, ``parallelism: 1``, ``backoffLimit: 0``) and the attempt are real:
``JobRunner`` against the Kubernetes emulator, which runs each pod's container as a local
process. Its second pod is made by the test, as the Job controller makes a parallel Job's pods
(its labels, its ``controller`` ownerReference to the Job), so that its name is known: the
Job's name and ``-zzzzz``, after any suffix the controller gives, and made after the first.
"Newest by creationTimestamp, then name" then picks it for sure, where, with pods made in the
same second, it picked one at random. It succeeds first (``WINNER-OK``, exit 0); the Job's own
pod then exits 7 (``LOSER-FAILS``), and the Job fails (BackoffLimitExceeded)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from reconciler.core.runs import RunStatus
from reconciler.runner.job import JobRunner
from reconciler.sources.kubernetes_jobs import JobWatch
from tests.helpers import wait_for
from tests.jobs.conftest import Gate
from tests.jobs.test_job_runner import job_task, record
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve
from tests.k8s.emulator.manifests import container


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    yield from serve(run_jobs=True, pod_backoff=0.05, max_grace_period=0.5)


def sibling(first: dict[str, Any], script: str) -> dict[str, Any]:
    """Another pod of the Job ``first`` belongs to, as its controller would make it."""
    meta = first["metadata"]
    job_name = meta["labels"]["job-name"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job_name}-zzzzz",
            "labels": meta["labels"],
            "ownerReferences": meta["ownerReferences"],
        },
        "spec": {"restartPolicy": "Never", "containers": [container(script)]},
    }


def test_a_failed_parallel_job_records_its_failed_pod(emulator: Emulator, tmp_path: Path) -> None:
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    core: Any = client.CoreV1Api(api)
    gate = Gate(tmp_path)
    spec = {"containers": [container(gate.wait("echo LOSER-FAILS; exit 7"))]}
    job_spec = {"completions": 2, "parallelism": 1, "backoffLimit": 0, "template": {"spec": spec}}
    task = job_task(job={"spec": job_spec})
    at = datetime.now(UTC).replace(microsecond=0)

    def pods() -> list[dict[str, Any]]:
        return [p for p in emulator.objects("pods") if p["status"].get("phase")]

    async def main() -> None:
        watch = JobWatch(api, ["default"])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        try:
            runner = JobRunner(watch, namespace="default", verify_seconds=0.05)
            running = asyncio.ensure_future(runner.attempt(task, record(at=at)).run())
            (loser,) = await asyncio.to_thread(wait_for, "the Job's pod", pods)
            winner = sibling(loser, "echo WINNER-OK; exit 0")
            await asyncio.to_thread(core.create_namespaced_pod, "default", winner)

            def winner_done() -> bool:
                return any(
                    p["metadata"]["name"] == winner["metadata"]["name"]
                    and p["status"]["phase"] == "Succeeded"
                    for p in pods()
                )

            await asyncio.to_thread(wait_for, "the pod that succeeds", winner_done)
            gate.open()
            outcome = await asyncio.wait_for(running, 20)
            assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "BackoffLimitExceeded")
            assert (outcome.exit_code, outcome.output) == (7, "LOSER-FAILS\n")
            assert outcome.job is not None
            assert outcome.job.pod == loser["metadata"]["name"]
            assert [(c.name, c.exit_code) for c in outcome.job.containers] == [("main", 7)]
            assert "exit code 7" in outcome.message
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()
