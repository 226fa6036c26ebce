"""What a look at the pods of a Job none of whose pods ran must never do (``job_end.Pending``,
``core.job_pods``): fail on a malformed pod (and keep the backstop from deleting the Job),
take a running sidecar for the Job's work, record a reason of crontask's own that anyone who
may write pods/status can set, keep invisible or reordering characters, record a story one
look behind without saying so, or cost more API calls than it needs (a Job GET per look, looks
of a Job without deadline, quorum LISTs all at once). The in-memory cluster
(``twin.FakeCluster``), and the emulator for what goes over the wire."""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from reconciler.core.job_pods import clean, has_run, story_pod, stuck_story
from reconciler.core.jobs import with_pod
from reconciler.core.runs import JobDetails, RunStatus
from reconciler.runner.job import JobRunner
from reconciler.runner.job_end import Pending
from reconciler.sources.kubernetes_jobs import JobWatch
from tests.jobs.test_job_never_ran_parts import (
    SCHEDULER_SAYS,
    UNSCHEDULABLE,
    PodsGoWithTheJob,
    pod,
    waiting,
)
from tests.jobs.test_job_runner import NAME, T0, job_task, record, until
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve
from tests.k8s.emulator.manifests import job as emulator_job

ODD: list[dict[str, Any]] = [
    {"metadata": None, "status": {"phase": "Pending", "conditions": [None]}},
    {
        "metadata": {"name": "q", "creationTimestamp": 7},
        "spec": "nonsense",
        "status": {
            "conditions": ["PodScheduled", 3, {"type": "PodScheduled", "status": "False"}],
            "containerStatuses": [None, "main", {"name": "main", "state": "waiting"}],
            "initContainerStatuses": "junk",
        },
    },
    {"metadata": {"name": "r"}, "status": "Pending"},
]


def test_malformed_pods_are_read_without_failing() -> None:
    for odd in ODD:
        assert not has_run(odd)
        with_pod(JobDetails(namespace="default", name=NAME), odd, None)
    assert story_pod(ODD, None) is not None
    stuck = stuck_story(ODD)
    assert stuck is not None
    assert stuck.reason == "Unschedulable"


class CountingCluster(PodsGoWithTheJob):
    def gets(self) -> int:
        return sum(1 for call, _ in self.calls if call == "get")


async def _pending_job(cluster: PodsGoWithTheJob, pods: list[dict[str, Any]]) -> str:
    """The attempt's Job, active and not ready, with ``pods``; its uid."""
    await until(lambda: NAME in cluster.jobs)
    job = copy.deepcopy(cluster.jobs[NAME])
    job["status"] = {"active": 1, "ready": 0}
    uid = str(job["metadata"]["uid"])
    cluster.pod_lists[uid] = pods
    cluster._store(job)
    return uid


def _backstop(pods: list[dict[str, Any]]) -> tuple[Any, PodsGoWithTheJob]:
    async def main() -> tuple[Any, PodsGoWithTheJob]:
        cluster = PodsGoWithTheJob()
        now = [T0]
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, clock=lambda: now[0])
        running = asyncio.ensure_future(runner.attempt(job_task(timeoutSeconds=60), record()).run())
        await _pending_job(cluster, pods)
        await until(lambda: cluster.pod_looks >= 1)
        now[0] = T0 + timedelta(days=1)
        return await asyncio.wait_for(running, 5), cluster

    return asyncio.run(main())


def test_a_malformed_pod_does_not_keep_the_backstop_from_deleting_the_job() -> None:
    outcome, cluster = _backstop(copy.deepcopy(ODD))
    assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "Unschedulable")
    assert NAME not in cluster.jobs  # deleted


STUCK_MAIN = waiting("ImagePullBackOff", 'Back-off pulling image "registry.invalid/x:1"')
ISTIO: dict[str, Any] = {
    "metadata": {"name": "p", "creationTimestamp": "2026-11-30T12:00:00Z"},
    "spec": {"containers": [{"name": "main"}, {"name": "istio-proxy"}]},
    "status": {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "istio-proxy", "state": {"running": {}}}, STUCK_MAIN],
    },
}
NATIVE: dict[str, Any] = {
    "metadata": {"name": "p", "creationTimestamp": "2026-11-30T12:00:00Z"},
    "spec": {
        "initContainers": [{"name": "log-shipper", "restartPolicy": "Always"}],
        "containers": [{"name": "main"}],
    },
    "status": {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": [{"name": "log-shipper", "state": {"running": {}}}],
        "containerStatuses": [STUCK_MAIN],
    },
}


@pytest.mark.parametrize("sidecar", [ISTIO, NATIVE], ids=["injected", "native"])
def test_a_running_sidecar_is_not_the_job_running(sidecar: dict[str, Any]) -> None:
    assert not has_run(sidecar, main="main")
    stuck = stuck_story([sidecar], main="main")
    assert stuck is not None
    assert stuck.reason == "ImagePullBackOff"
    # An init container that is no sidecar did the Job's work: it ran.
    ran = copy.deepcopy(NATIVE)
    ran["spec"]["initContainers"][0].pop("restartPolicy")
    assert has_run(ran, main="main")


def test_the_backstop_tells_the_image_a_running_sidecar_waits_beside() -> None:
    outcome, _ = _backstop([copy.deepcopy(ISTIO)])
    assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "ImagePullBackOff")


@pytest.mark.parametrize("word", ["Shutdown", "JobDeleted", "Replaced", "JobGone", "Whatever"])
def test_only_the_schedulers_reasons_are_a_records_reason(word: str) -> None:
    stuck = stuck_story([pod(scheduled={"status": "False", "reason": word, "message": "held"})])
    assert stuck is not None
    assert stuck.reason == "Unschedulable"


@pytest.mark.parametrize("word", ["Unschedulable", "SchedulerError", "SchedulingGated"])
def test_the_schedulers_reasons_are_kept(word: str) -> None:
    stuck = stuck_story([pod(scheduled={"status": "False", "reason": word})])
    assert stuck is not None
    assert stuck.reason == word


def test_every_character_that_is_not_printable_is_cleaned_away() -> None:
    said = clean("line1\u2028line2\u2029x\u202egnp.exe\u200b\ufeffend\x85")
    assert all(ch.isprintable() for ch in said), repr(said)
    assert said.startswith("line1 line2 x gnp.exe")


def test_a_pod_seen_run_leaves_the_timeout_a_deadline_though_the_look_is_older() -> None:
    """The Job controller counts a pod ready after the last look, then the cluster's deadline
    ends the Job; its pods are gone by then (k8s >= 1.31 adds the terminal condition once
    they are): the ready count tells that a pod ran."""

    async def main() -> Any:
        cluster = PodsGoWithTheJob()
        runner = JobRunner(cluster, namespace="default", verify_seconds=30)
        attempt = runner.attempt(job_task(timeoutSeconds=4), record())
        running = asyncio.ensure_future(attempt.run())
        uid = await _pending_job(cluster, [pod(scheduled=UNSCHEDULABLE)])
        await until(lambda: cluster.pod_looks >= 1, 10)
        job = copy.deepcopy(cluster.jobs[NAME])
        job["status"] = {"active": 1, "ready": 1}
        cluster.pod_lists[uid] = [pod(phase="Running")]
        looks = cluster.pod_looks
        cluster._store(job)
        await until(lambda: attempt.pending.ran)
        assert cluster.pod_looks == looks  # told by the Job, not looked at
        cluster.pod_lists[uid] = []
        job = copy.deepcopy(job)
        job["status"] = {"active": 0, "failed": 1, "conditions": [_condition("Failed")]}
        cluster._store(job)
        return await asyncio.wait_for(running, 5)

    outcome = asyncio.run(main())
    assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")


def _condition(kind: str) -> dict[str, str]:
    said = "Job was active longer than specified deadline"
    return {"type": kind, "status": "True", "reason": "DeadlineExceeded", "message": said}


RUNNING_INIT = {
    "metadata": {"name": "p", "creationTimestamp": "2026-11-30T12:00:00Z"},
    "spec": {"nodeName": "n1", "initContainers": [{"name": "init"}]},
    "status": {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": [{"name": "init", "state": {"running": {}}}],
    },
}


def test_the_pods_are_looked_at_once_more_when_the_cluster_decides() -> None:
    """Scheduled after the last look, its init container running (the Job's ready count stays
    0); then the cluster's deadline: ``FailureTarget`` while the pods terminate, ``Failed`` once
    they are gone. The look at the decision sees that the pod ran."""

    async def main() -> Any:
        cluster = PodsGoWithTheJob()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        running = asyncio.ensure_future(
            runner.attempt(job_task(timeoutSeconds=600), record()).run()
        )
        uid = await _pending_job(cluster, [pod(scheduled=UNSCHEDULABLE)])
        await until(lambda: cluster.pod_looks >= 1)
        cluster.pod_lists[uid] = [copy.deepcopy(RUNNING_INIT)]
        job = copy.deepcopy(cluster.jobs[NAME])
        job["status"] = {"active": 1, "ready": 0, "conditions": [_condition("FailureTarget")]}
        looks = cluster.pod_looks
        cluster._store(job)
        await until(lambda: cluster.pod_looks > looks)
        cluster.pod_lists[uid] = []
        job = copy.deepcopy(job)
        job["status"] = {"active": 0, "failed": 1}
        job["status"]["conditions"] = [_condition("FailureTarget"), _condition("Failed")]
        cluster._store(job)
        return await asyncio.wait_for(running, 5)

    outcome = asyncio.run(main())
    assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")


def test_only_a_deadline_decided_has_the_pods_looked_at_once_more() -> None:
    job: dict[str, Any] = {"spec": {"activeDeadlineSeconds": 60}, "status": {"active": 1}}
    failed = {**_condition("FailureTarget"), "reason": "BackoffLimitExceeded"}
    job["status"]["conditions"] = [failed]
    assert Pending().due(job, 0.0, 15.0) is None
    job["status"]["conditions"] = [_condition("FailureTarget")]
    pending = Pending()
    assert pending.due(job, 0.0, 15.0) == 0.0
    assert pending.due(job, 1.0, 15.0) is None  # once


def test_the_record_says_when_the_pod_was_seen_stuck() -> None:
    """The pods gone when the Job is decided: what the last look saw is told, as of then."""

    async def main() -> Any:
        cluster = PodsGoWithTheJob()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        running = asyncio.ensure_future(
            runner.attempt(job_task(timeoutSeconds=600), record()).run()
        )
        uid = await _pending_job(cluster, [pod(scheduled=UNSCHEDULABLE)])
        await until(lambda: cluster.pod_looks >= 1)
        cluster.pod_lists[uid] = []
        job = copy.deepcopy(cluster.jobs[NAME])
        job["status"] = {"active": 0, "failed": 1}
        job["status"]["conditions"] = [_condition("FailureTarget"), _condition("Failed")]
        cluster._store(job)
        return await asyncio.wait_for(running, 5)

    outcome = asyncio.run(main())
    assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "Unschedulable")
    told = r"; its pod was never scheduled \(as seen \d+s before the end\): "
    assert re.search(told + re.escape(SCHEDULER_SAYS) + "$", outcome.message), outcome.message


def test_a_look_at_the_pods_costs_no_job_get() -> None:
    async def main() -> None:
        cluster = CountingCluster()
        runner = JobRunner(cluster, namespace="default", verify_seconds=600)
        running = asyncio.ensure_future(runner.attempt(job_task(timeoutSeconds=4), record()).run())
        await _pending_job(cluster, [pod(scheduled=UNSCHEDULABLE)])
        await until(lambda: cluster.pod_looks >= 1, 10)
        gets = cluster.gets()
        await until(lambda: cluster.pod_looks >= 2, 10)
        assert cluster.gets() == gets
        running.cancel()

    asyncio.run(main())


def test_a_job_without_deadline_has_its_pods_not_looked_at() -> None:
    async def main() -> None:
        cluster = CountingCluster()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.02)
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await _pending_job(cluster, [pod(scheduled=UNSCHEDULABLE)])
        await until(lambda: cluster.gets() >= 5)  # well past a look's interval (verify_seconds)
        assert cluster.pod_looks == 0
        running.cancel()

    asyncio.run(main())


def test_the_first_look_of_jobs_made_together_is_spread() -> None:
    job = {"status": {"active": 1}}
    firsts = {Pending().due(job, 100.0, 8.0) for _ in range(20)}
    assert len(firsts) > 1
    assert all(first is not None and 6.0 <= first <= 10.0 for first in firsts)


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()


def test_a_look_lists_the_pods_from_the_api_servers_cache(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    """A look may be a moment behind (``resourceVersion=0``: no quorum read of etcd); the
    evidence at the Job's end is read as the API server has it now."""
    kubeconfig = quiet_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    uid = quiet_emulator.create(emulator_job("backup"))["metadata"]["uid"]

    def lists() -> list[dict[str, str]]:
        return [
            r.query
            for r in quiet_emulator.request_log
            if r.method == "GET" and r.path.endswith("/pods")
        ]

    async def main() -> None:
        watch = JobWatch(api, ["default"])
        try:
            await watch.pods("default", uid, cached=True)
            assert [q.get("resourceVersion") for q in lists()] == ["0"]
            await watch.pods("default", uid)
            assert [q.get("resourceVersion") for q in lists()] == ["0", None]
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()


def test_a_container_the_kubelet_never_started_has_not_run() -> None:
    """At the deadline the pods are deleted, and the kubelet marks a container it never
    started (its image never pulled) terminated, ContainerStatusUnknown: the pod still never
    ran, and its story is still told."""
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-12-05T00:00:00Z"},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "main",
                    "state": {
                        "terminated": {
                            "reason": "ContainerStatusUnknown",
                            "exitCode": 137,
                            "message": "The container could not be located",
                        }
                    },
                }
            ],
        },
    }
    assert not has_run(pod, "main")
    ran = {
        "status": {
            "containerStatuses": [
                {"name": "main", "state": {"terminated": {"reason": "Error", "exitCode": 1}}}
            ]
        }
    }
    assert has_run(ran, "main")
