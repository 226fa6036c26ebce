"""A Job deleted as soon as it ends (a TTL controller, a person, a policy engine) still tells
its run how it ended: the watch keeps the last terminal state it saw of each Job
(``JobWatch.ended``), and the attempt concludes from it instead of recording ``JobDeleted``,
an unknown outcome that a retry would run again. A Job deleted before its end was seen is
still ``JobDeleted``, and its run is not retried."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from reconciler.core.jobs import RUN_LABEL
from reconciler.core.runs import RunStatus
from reconciler.runner.job import JobRunner
from reconciler.sources.kubernetes_jobs import JobWatch
from reconciler.store import MemoryRunStore
from tests.helpers import wait_for
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, play, record, until, wired
from tests.jobs.twin import FakeCluster
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve
from tests.k8s.emulator.manifests import job as emulator_job


def test_a_job_deleted_the_moment_it_ends_is_recorded_by_its_end() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        # Back to back, before the attempt looks again: the watch sees it end, then go.
        cluster.finish(NAME, exit_code=0, log="all good\n")
        cluster.vanish(NAME)
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason, outcome.exit_code) == (
            RunStatus.SUCCEEDED,
            None,
            0,
        )
        assert outcome.output == "all good\n"

    play(body)


def test_a_job_deleted_the_moment_it_fails_is_recorded_failed_with_its_reason() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        cluster.finish(NAME, "Failed", exit_code=3)
        cluster.vanish(NAME)
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "BackoffLimitExceeded")

    play(body)


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()  # runs no Job: the test sets their status


def test_the_watch_keeps_the_end_of_a_job_deleted_at_once(
    quiet_emulator: Emulator, tmp_path: Path
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
            complete = {"conditions": [{"type": "Complete", "status": "True"}]}
            await asyncio.to_thread(
                batch.patch_namespaced_job_status, "quick", "default", {"status": complete}
            )
            await asyncio.to_thread(
                batch.delete_namespaced_job, "quick", "default", propagation_policy="Background"
            )
            await until(lambda: watch.ended("default", "quick") is not None)
            await asyncio.to_thread(
                wait_for, "the deletion seen", lambda: watch.cached("default", "quick") is None
            )
            last = watch.ended("default", "quick")
            assert last is not None
            assert last["metadata"]["uid"] == made.metadata.uid
            assert last["status"]["conditions"][0]["type"] == "Complete"
            assert watch.ended("default", "other") is None
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()


def test_a_job_deleted_before_its_end_was_seen_is_not_retried() -> None:
    """Its outcome is unknown: it may have run to its end (a TTL of 0 while the watch was
    away), and a retry would run the work twice. Recorded failed, and that is the run's end."""
    store = MemoryRunStore()

    async def main() -> None:
        cluster = FakeCluster()
        d, _ = wired(cluster, store, lambda: T0)
        fired = d.fire(job_task(retry={"limit": 2, "backoffSeconds": 0}), T0)
        await until(lambda: NAME in cluster.jobs)
        cluster.vanish(NAME)  # gone, and no end of it seen
        await until(lambda: not d.active(KEY))
        assert [(r.status, r.reason) for r in store.attempts(fired.id)] == [
            (RunStatus.FAILED, "JobDeleted")
        ]
        assert "it is not retried" in (store.attempts(fired.id)[0].message or "")
        assert [c for c in cluster.calls if c[0] == "create"] == [("create", NAME)]
        await d.shutdown(0)

    asyncio.run(main())
