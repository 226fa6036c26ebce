"""A live Job whose run's record is final, which crontask may not read (its ServiceAccount
lacks ``jobs: get``, a ``401``/``403``): the housekeeping could not look whether it still
runs, so it is not done with it. It was marked handled at the first refusal and never looked
at again, running on beside the run that replaced it; now it is looked at again at each pass
(the refusal said once, naming the rule), and deleted once crontask may read it.

The real :class:`JobWatch` and kubernetes client, over HTTP, against the project's Kubernetes
emulator, which answers the GET ``403`` (``Emulator.inject_errors``) and then allows it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.jobs import release_jobs
from reconciler.core.jobs import job_manifest
from reconciler.core.runs import JobDetails, RunStatus
from reconciler.runner.base import Actions
from reconciler.runner.job import JobRunner
from reconciler.sources.kubernetes_jobs import JobWatch
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve

JOB = f"/apis/batch/v1/namespaces/default/jobs/{NAME}"


@pytest.fixture
def emulator() -> Iterator[Emulator]:  # no Job controller: the conftest's runs Jobs
    yield from serve()


@pytest.mark.parametrize("status", [403, 401])
def test_a_job_crontask_may_not_read_stays_to_be_cleaned_up_later(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    store = MemoryRunStore()
    claimed = record(job=JobDetails("default", NAME))
    store.claim(claimed)
    job = job_manifest(job_task(), claimed, namespace="default", name=NAME, env={})
    emulator.create(job)  # no Job controller here: it stays live
    store.complete(
        claimed.finish(RunStatus.FAILED, finished_at=T0, reason="Replaced", job=claimed.job)
    )

    async def main() -> None:
        watch = JobWatch(k8s_api_client, ["default"])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        runner = JobRunner(watch, namespace="default", verify_seconds=0.05)
        d = Dispatcher(store, owner="h:2:y", clock=lambda: T0, actions=Actions([runner]))
        handled: set[str] = set()
        said: set[str] = set()
        try:
            await until(lambda: bool(runner.running(KEY)), 10)  # the watch has seen it live
            # Its watch open: the error injected next is the GET's (asserted below).
            await asyncio.to_thread(emulator.wait_for_watches, 1, "jobs")
            with caplog.at_level(logging.WARNING, logger="crontask.jobs"):
                for _ in range(2):  # refused at two passes
                    before = len(emulator.requests)
                    emulator.inject_errors(status=status, times=1)
                    assert await release_jobs(d, store, runner, {KEY}, handled, said) == 0
                    # The refused request was the GET of that Job (not the watch's).
                    assert emulator.requests[before:][:1] == [("GET", JOB)]
                    assert [n for n in emulator.objects("jobs")] != []
                # Allowed: looked at again, and deleted.
                assert await release_jobs(d, store, runner, {KEY}, handled, said) == 1
            assert emulator.objects("jobs") == []
            refused = [r for r in caplog.records if "cannot read a Job" in r.getMessage()]
            assert len(refused) == 1, [r.getMessage() for r in caplog.records]
            fields = getattr(refused[0], "fields", {})
            assert fields["status"] == status
            rule = "missing" if status == 403 else "request"
            assert fields[rule] == "jobs: get in namespace default", fields
            assert "tried again" in refused[0].getMessage()
            deleted = [r for r in caplog.records if r.getMessage().startswith("job deleted")]
            assert len(deleted) == 1
            await d.shutdown(0)
        finally:
            watch.stop()

    asyncio.run(main())
