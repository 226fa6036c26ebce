"""The parts of "a Job the cluster never ran says so": which pod is stuck and what it says
(``core.job_pods.stuck_story``: cleaned, bounded), and the ``timeoutSeconds`` backstop of a
Job whose pending pod the attempt saw while following it, gone by the time it is deleted
(with the in-memory cluster, ``twin.FakeCluster``, on a fake wall clock)."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest

from reconciler.core.job_pods import STUCK_CHARS, has_run, stuck_story
from reconciler.core.runs import RunStatus
from reconciler.runner.job import JobRunner
from tests.jobs.test_job_runner import NAME, T0, job_task, record, until
from tests.jobs.twin import ApiError, FakeCluster

SCHEDULER_SAYS = "0/3 nodes are available: 3 node(s) had untolerated taint {gpu: true}."


def pod(
    name: str = "p",
    *,
    created: str = "2026-11-30T12:00:00Z",
    scheduled: dict[str, Any] | None = None,
    containers: list[dict[str, Any]] | None = None,
    phase: str = "Pending",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if scheduled is not None:
        status["conditions"] = [{"type": "PodScheduled", **scheduled}]
    if containers is not None:
        status["containerStatuses"] = containers
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


UNSCHEDULABLE = {"status": "False", "reason": "Unschedulable", "message": SCHEDULER_SAYS}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"name": "main", "state": {"waiting": {"reason": reason, "message": message}}}


def test_an_unscheduled_pod_tells_the_schedulers_reason_and_message() -> None:
    stuck = stuck_story([pod(scheduled=UNSCHEDULABLE)])
    assert stuck is not None
    assert (stuck.reason, stuck.what, stuck.detail) == (
        "Unschedulable",
        "was never scheduled",
        SCHEDULER_SAYS,
    )


def test_a_pod_waiting_on_its_image_tells_the_container_and_the_kubelets_message() -> None:
    stuck = stuck_story(
        [pod(scheduled={"status": "True"}, containers=[waiting("ErrImagePull", "not found")])]
    )
    assert stuck is not None
    assert (stuck.reason, stuck.what, stuck.detail) == (
        "ErrImagePull",
        "never started",
        "container main: ErrImagePull: not found",
    )


@pytest.mark.parametrize(
    "pods",
    [
        [],
        [pod(scheduled={"status": "True"}, containers=[waiting("ContainerCreating")])],
        # One pod ran: the Job is not one the cluster never ran, whatever the other says.
        [
            pod("a", scheduled=UNSCHEDULABLE, created="2026-11-30T12:00:09Z"),
            pod("b", phase="Failed", containers=[{"name": "main", "state": {"terminated": {}}}]),
        ],
        # Restarted in its pod (OnFailure): it ran, and waits to run again.
        [
            pod(
                containers=[
                    {**waiting("CrashLoopBackOff"), "lastState": {"terminated": {"exitCode": 1}}}
                ]
            )
        ],
    ],
)
def test_pods_that_ran_or_are_not_stuck_tell_nothing(pods: list[dict[str, Any]]) -> None:
    assert stuck_story(pods) is None


def test_the_newest_stuck_pod_tells() -> None:
    older = pod("a", created="2026-11-30T12:00:00Z", containers=[waiting("ImagePullBackOff")])
    newer = pod("b", created="2026-11-30T12:00:05Z", scheduled=UNSCHEDULABLE)
    stuck = stuck_story([older, newer])
    assert stuck is not None
    assert stuck.reason == "Unschedulable"


def test_what_the_cluster_says_is_cleaned_and_bounded() -> None:
    noisy = {
        "status": "False",
        "reason": "Not a\nreason",
        "message": "line one\n\x1b[31mred\x1b[0m\r\t" + "x" * 2000,
    }
    stuck = stuck_story([pod(scheduled=noisy)])
    assert stuck is not None
    assert stuck.reason == "Unschedulable"  # a reason that is no word is not a record's reason
    assert len(stuck.detail) == STUCK_CHARS
    assert stuck.detail.startswith("line one [31mred [0m x")
    assert stuck.detail.endswith("...")
    assert all(ch.isprintable() for ch in stuck.detail)


def test_a_running_pod_has_run() -> None:
    assert has_run(pod(phase="Running"))
    assert not has_run(pod(scheduled=UNSCHEDULABLE))


class PodsGoWithTheJob(FakeCluster):
    """A Job whose pod is Pending and unschedulable until the Job is deleted (then the pod
    goes too, as the Job controller's and the garbage collector's deletes make it go)."""

    def __init__(self) -> None:
        super().__init__()
        self.pod_looks = 0

    async def pods(self, namespace: str, uid: str, *, cached: bool = False) -> list[dict[str, Any]]:
        self.pod_looks += 1
        return await super().pods(namespace, uid, cached=cached)

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        self.pod_lists.clear()
        return await super().delete(namespace, name, uid)


def test_the_backstop_says_the_pod_was_never_scheduled() -> None:
    async def main() -> None:
        cluster = PodsGoWithTheJob()
        now = [T0]
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, clock=lambda: now[0])
        running = asyncio.ensure_future(runner.attempt(job_task(timeoutSeconds=60), record()).run())
        await until(lambda: NAME in cluster.jobs)
        job = copy.deepcopy(cluster.jobs[NAME])
        job["status"] = {"active": 1, "ready": 0}
        cluster.pod_lists[job["metadata"]["uid"]] = [pod(scheduled=UNSCHEDULABLE)]
        cluster._store(job)
        await until(lambda: cluster.pod_looks >= 1)
        now[0] = T0 + timedelta(days=1)  # long past timeoutSeconds: the backstop ends it
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "Unschedulable")
        assert f"Job {NAME} did not finish within timeoutSeconds (60s)" in outcome.message
        assert outcome.message.endswith(
            f"; its pod was never scheduled (as seen 0s before the end): {SCHEDULER_SAYS}"
        )

    asyncio.run(main())


def test_a_pod_seen_running_keeps_the_timeout_a_deadline() -> None:
    async def main() -> None:
        cluster = PodsGoWithTheJob()
        now = [T0]
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, clock=lambda: now[0])
        running = asyncio.ensure_future(runner.attempt(job_task(timeoutSeconds=60), record()).run())
        await until(lambda: NAME in cluster.jobs)
        job = copy.deepcopy(cluster.jobs[NAME])
        job["status"] = {"active": 1, "ready": 0}
        uid = job["metadata"]["uid"]
        cluster.pod_lists[uid] = [pod(scheduled=UNSCHEDULABLE)]
        cluster._store(job)
        await until(lambda: cluster.pod_looks >= 1)
        # Scheduled and running since; the Job controller counts it ready.
        cluster.pod_lists[uid] = [pod(phase="Running")]
        job = copy.deepcopy(job)
        job["status"] = {"active": 1, "ready": 1}
        cluster._store(job)
        looks = cluster.pod_looks
        now[0] = T0 + timedelta(days=1)
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
        assert "never" not in outcome.message
        # A Job with a pod that ran: its pods are looked at only once more, for its end.
        assert cluster.pod_looks == looks + 1

    asyncio.run(main())


class DeleteRefused(PodsGoWithTheJob):
    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        raise ApiError("forbidden", 403)


def test_a_backstop_whose_delete_is_refused_keeps_the_reason_that_stops_it_again() -> None:
    async def main() -> None:
        cluster = DeleteRefused()
        now = [T0]
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, clock=lambda: now[0])
        running = asyncio.ensure_future(runner.attempt(job_task(timeoutSeconds=60), record()).run())
        await until(lambda: NAME in cluster.jobs)
        job = copy.deepcopy(cluster.jobs[NAME])
        job["status"] = {"active": 1, "ready": 0}
        cluster.pod_lists[job["metadata"]["uid"]] = [pod(scheduled=UNSCHEDULABLE)]
        cluster._store(job)
        await until(lambda: cluster.pod_looks >= 1)
        now[0] = T0 + timedelta(days=1)
        outcome = await asyncio.wait_for(running, 5)
        # The Job lives on: the reason a crontask that adopts it stops it again by.
        assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
        assert "could not delete it yet" in outcome.message
        assert outcome.message.endswith(
            f"; its pod was never scheduled (as seen 0s before the end): {SCHEDULER_SAYS}"
        )

    asyncio.run(main())
