"""Kubernetes 1.31+ decides a Job's outcome (``SuccessCriteriaMet``/``FailureTarget``, status
True) before its terminal condition, which comes only once its pods are gone. A Job deleted in
between, at once (a TTL, a person, a policy engine), is still judged by its decision: the watch
keeps its last state from the decision on (``JobWatch.ended``), not only from
``Complete``/``Failed``; the in-memory twin does the same."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from reconciler.core.jobs import RUN_LABEL, decided
from reconciler.core.runs import RunStatus
from reconciler.runner.job import JobRunner
from reconciler.sources.kubernetes_jobs import JobWatch
from tests.helpers import wait_for
from tests.jobs.test_decided_conditions import decide
from tests.jobs.test_job_runner import NAME, job_task, play, record, until
from tests.jobs.twin import FakeCluster
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve
from tests.k8s.emulator.manifests import job as emulator_job

DECISIONS = [("SuccessCriteriaMet", "Complete"), ("FailureTarget", "Failed")]


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()  # runs no Job: the test sets their status


@pytest.mark.parametrize(("kind", "outcome"), DECISIONS)
def test_the_watch_keeps_a_decided_job_deleted_at_once(
    quiet_emulator: Emulator, tmp_path: Path, kind: str, outcome: str
) -> None:
    kubeconfig = quiet_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    batch: Any = client.BatchV1Api(api)  # given plain dicts

    async def main() -> None:
        watch = JobWatch(api, ["default"])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        try:
            made = await asyncio.to_thread(
                batch.create_namespaced_job,
                "default",
                emulator_job("quick", labels={RUN_LABEL: "x"}),
            )
            # Seen first: else "gone from the cache" below held before the watch saw it at all.
            await asyncio.to_thread(
                wait_for, "the Job seen", lambda: watch.cached("default", "quick") is not None
            )
            target = {"type": kind, "status": "True", "reason": "Because"}
            await asyncio.to_thread(
                batch.patch_namespaced_job_status,
                "quick",
                "default",
                {"status": {"active": 1, "conditions": [target]}},
            )
            await asyncio.to_thread(
                batch.delete_namespaced_job, "quick", "default", propagation_policy="Background"
            )
            await asyncio.to_thread(
                wait_for, "the deletion seen", lambda: watch.cached("default", "quick") is None
            )
            last = watch.ended("default", "quick")
            assert last is not None
            assert last["metadata"]["uid"] == made.metadata.uid
            assert decided(last) == (outcome, "Because", "")
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()


@pytest.mark.parametrize(
    ("kind", "status"),
    [("SuccessCriteriaMet", RunStatus.SUCCEEDED), ("FailureTarget", RunStatus.FAILED)],
)
def test_a_job_deleted_the_moment_it_is_decided_is_recorded_by_its_decision(
    kind: str, status: RunStatus
) -> None:
    """Back to back, before the attempt looks again: the twin's watch sees the decision, then
    the Job go, as a TTL or a person deleting it at once would have it."""

    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        decide(cluster, NAME, kind)
        cluster.vanish(NAME)
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (
            status,
            None if status is RunStatus.SUCCEEDED else "BackoffLimitExceeded",
        )

    play(body)
