"""The background read of a ``Replace``-stopped attempt's Job (``runner.job_create``,
``_find_and_delete``: its create and the read after it went unanswered) ends on an answer that
asking again does not change (403, 401), with one warning: it asked again forever, a warning
each time, for a crontask that may not read Jobs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from reconciler.core.jobs import job_manifest
from reconciler.runner import job_create
from reconciler.runner.job import JobRunner
from tests.jobs.test_job_runner import NAME, job_task, record, until
from tests.jobs.twin import ApiError, FakeCluster


class Refused(FakeCluster):
    """Every read of a Job is refused with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", name))
        raise ApiError(f"cannot read Job: ({self.status}) Forbidden", self.status)


@pytest.mark.parametrize("status", [403, 401])
def test_a_read_refused_for_good_ends_the_search_for_a_stopped_attempts_job(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        cluster = Refused(status)
        cluster.watch_delivers = False
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.01)
        attempt = runner.attempt(job_task(), record())
        finder = asyncio.ensure_future(job_create._find_and_delete(attempt))

        def reads() -> int:
            return cluster.calls.count(("get", NAME))

        await until(lambda: finder.done() or reads() >= 3)
        assert finder.done()
        assert reads() == 1
        assert [c for c in cluster.calls if c[0] == "delete"] == []

    with caplog.at_level(logging.WARNING, logger="crontask.runner"):
        asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if r.name == "crontask.runner"]
    assert said == ["cannot read the Job of a stopped attempt; given up: refused for good"]


def test_an_unanswered_read_is_asked_again_until_the_job_is_found_and_deleted() -> None:
    async def main() -> None:
        cluster = FakeCluster()
        cluster.watch_delivers = False
        cluster.get_errors = 2  # no answer (no status): the API server is away
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.01)
        mine = record()
        cluster.add(job_manifest(job_task(), mine, namespace="default", name=NAME, env={}))
        attempt = runner.attempt(job_task(), mine)
        finder = asyncio.ensure_future(job_create._find_and_delete(attempt))
        await until(finder.done)
        assert cluster.calls.count(("get", NAME)) == 3
        assert NAME not in cluster.jobs

    asyncio.run(main())
