"""The Job watches started on demand, one per namespace, are bounded by the namespaces in use,
not by every namespace a definition ever named: ``JobWatch.let_go`` stops the watch of a
namespace whose cache holds no Job of a task (a Job that is no task's, misnamed, holds
nothing), and the room it leaves takes a new namespace. A namespace that holds a task's Job
(one clean-up may still delete) keeps its watch. The refusal past the bound does not send
anyone to ``--all-namespaces`` (which also reads every namespace's CronTasks)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from reconciler.core.jobs import job_manifest, job_name
from reconciler.sources import kubernetes_jobs
from reconciler.sources.kubernetes_jobs import JobApiError, JobWatch
from tests.helpers import wait_for
from tests.jobs.test_job_runner import KEY, T0, job_task, record
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve

HELD, STRAY, UNUSED, NEW = "held", "stray", "unused", "new"


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()  # runs no Job


def made(namespace: str, name: str) -> dict[str, Any]:
    """The Job crontask makes for the run of ``KEY`` at ``T0`` (a folder task's: no owner)."""
    return job_manifest(job_task(), record(at=T0), namespace=namespace, name=name, env={})


def test_a_namespace_without_a_tasks_job_is_let_go_and_its_room_taken(
    quiet_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubernetes_jobs, "MAX_NAMESPACES", 4)  # default and three more
    for namespace in (HELD, STRAY, UNUSED, NEW):
        quiet_emulator.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
    kubeconfig = quiet_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    batch: Any = client.BatchV1Api(api)  # given plain dicts
    # The task's Job where an earlier definition put it; and, elsewhere, one that says it is
    # the task's but has the name its Jobs have in their own namespace (no hash of the key).
    kept = made(HELD, job_name(KEY, T0, 1, qualified=True))
    batch.create_namespaced_job(HELD, kept)
    batch.create_namespaced_job(STRAY, made(STRAY, job_name(KEY, T0, 1, qualified=False)))

    async def main() -> None:
        watch = JobWatch(api, ["default"])
        watch.trust(lambda task: ("default", None))  # its Jobs go to default now
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        try:
            for namespace in (HELD, STRAY, UNUSED):
                await watch.watch(namespace)
            stray = job_name(KEY, T0, 1, qualified=False)
            assert watch.cached(STRAY, stray) is not None  # listed before watch() returned
            with pytest.raises(JobApiError) as refused:
                await watch.watch(NEW)
            assert "at most 4 namespaces" in str(refused.value)
            assert "all-namespaces" not in str(refused.value)
            assert watch.namespaces() == {"default", HELD, STRAY, UNUSED}

            # default is watched for good; the task's Job holds its namespace.
            assert watch.idle(watch.namespaces()) == {STRAY, UNUSED}
            assert await watch.let_go(watch.namespaces()) == [STRAY, UNUSED]
            assert watch.namespaces() == {"default", HELD}
            assert not watch.watched(STRAY)
            assert watch.cached(STRAY, stray) is None
            await watch.watch(NEW)
            assert watch.watched(NEW)
            # The Job left in its former namespace is still the task's, for clean-up.
            meta = kept["metadata"]
            assert [j["metadata"]["name"] for j in watch.jobs_of(KEY)] == [meta["name"]]

            # Gone from the cluster (cleaned up), it holds the namespace no more.
            batch.delete_namespaced_job(meta["name"], HELD)
            await asyncio.to_thread(
                wait_for, "the delete seen", lambda: watch.cached(HELD, meta["name"]) is None
            )
            assert await watch.let_go([HELD]) == [HELD]
            assert watch.namespaces() == {"default", NEW}
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()
