"""What the housekeeping keeps of the Jobs of final records it dealt with (deleted, or whose
read was refused: said once) is dropped once the Job watch no longer lists them: a Job
crontask may not read, deleted by someone else, left its entry for the life of the process.

The real :class:`JobWatch` and kubernetes client, over HTTP, against the project's Kubernetes
emulator (the GET of the first Job answered ``403`` by ``Emulator.inject_errors``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.jobs import release_jobs
from reconciler.core.jobs import job_manifest, job_name
from reconciler.core.runs import JobDetails, RunRecord, RunStatus
from reconciler.runner.base import Actions
from reconciler.runner.job import JobRunner
from reconciler.sources.kubernetes_jobs import JobWatch
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, T0, job_task, record, until
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve


@pytest.fixture
def emulator() -> Iterator[Emulator]:  # no Job controller: the conftest's runs Jobs
    yield from serve()


def _final_job(emulator: Emulator, store: MemoryRunStore, minute: int) -> RunRecord:
    """A live Job whose run's record is final (as after a ``Replace``)."""
    at = T0 + timedelta(minutes=minute)
    name = job_name(KEY, at, 1, qualified=False)
    claimed = record(at=at, job=JobDetails("default", name))
    store.claim(claimed)
    emulator.create(job_manifest(job_task(), claimed, namespace="default", name=name, env={}))
    store.complete(
        claimed.finish(RunStatus.FAILED, finished_at=at, reason="Replaced", job=claimed.job)
    )
    return claimed


def test_entries_of_jobs_the_watch_no_longer_lists_are_dropped(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    store = MemoryRunStore()
    refused = _final_job(emulator, store, 0)
    batch = client.BatchV1Api(k8s_api_client)

    async def main() -> None:
        watch = JobWatch(k8s_api_client, ["default"])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        runner = JobRunner(watch, namespace="default", verify_seconds=0.05)
        d = Dispatcher(store, owner="h:2:y", clock=lambda: T0, actions=Actions([runner]))
        handled: set[str] = set()
        said: set[str] = set()
        try:
            await until(lambda: len(runner.running(KEY)) == 1, 10)
            await asyncio.to_thread(emulator.wait_for_watches, 1, "jobs")
            (uid,) = [str(r.job.uid) for r in runner.running(KEY) if r.job is not None]
            emulator.inject_errors(status=403, times=1)  # the GET of that Job
            assert await release_jobs(d, store, runner, {KEY}, handled, said) == 0
            assert said == {f"get:{uid}"}  # still listed: kept (said once)
            # Someone else deletes it; another final Job comes, which crontask may delete.
            assert refused.job is not None
            await asyncio.to_thread(batch.delete_namespaced_job, refused.job.name, "default")
            _final_job(emulator, store, 1)
            await until(lambda: [r.id for r in runner.running(KEY)] != [refused.id], 10)
            await until(lambda: len(runner.running(KEY)) == 1, 10)
            (other,) = [str(r.job.uid) for r in runner.running(KEY) if r.job is not None]
            assert await release_jobs(d, store, runner, {KEY}, handled, said) == 1
            assert said == set()  # the refused Job is gone from the watch: forgotten
            assert other in handled  # deleted here, still listed a moment perhaps
            await until(lambda: not runner.running(KEY), 10)
            assert await release_jobs(d, store, runner, {KEY}, handled, said) == 0
            assert handled == set()  # gone from the watch too
            assert emulator.objects("jobs") == []
            await d.shutdown(0)
        finally:
            watch.stop()

    asyncio.run(main())
