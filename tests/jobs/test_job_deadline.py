"""The backstop of ``timeoutSeconds``: a Job the cluster does not end (suspended by hand,
managed by another controller, a Job controller that is down) does not keep its run
``running`` for ever, nor wedge a ``Forbid`` task. Past ``timeoutSeconds`` and the margin
after the Job's creation and after this process began to follow it, crontask deletes it and
times the attempt out. On a fake wall clock, with the
in-memory cluster (``twin.FakeCluster``, whose Jobs are created at T0)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from reconciler.core.jobs import job_manifest
from reconciler.core.runs import JobDetails, RunStatus
from reconciler.runner.job import DEADLINE_EXCEEDED, JobRunner
from tests.jobs.test_job_runner import NAME, T0, job_task, record, until
from tests.jobs.twin import FakeCluster

MARGIN = 5.0
TIMEOUT = 60


class Deletes(FakeCluster):
    """Records the uid each delete is conditioned on."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[tuple[str, str | None]] = []

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        self.deleted.append((name, uid))
        return await super().delete(namespace, name, uid)


def runner_at(cluster: FakeCluster, now: list[datetime]) -> JobRunner:
    return JobRunner(
        cluster,
        namespace="default",
        verify_seconds=0.05,
        deadline_margin=MARGIN,
        clock=lambda: now[0],
    )


def reads(cluster: FakeCluster) -> int:
    return cluster.calls.count(("get", NAME))


def test_a_job_the_cluster_never_ends_is_deleted_and_its_run_timed_out() -> None:
    async def main() -> None:
        cluster = Deletes()
        now = [T0]
        runner = runner_at(cluster, now)
        running = asyncio.ensure_future(
            runner.attempt(job_task(timeoutSeconds=TIMEOUT), record()).run()
        )
        await until(lambda: NAME in cluster.jobs)
        # Up to the deadline and its margin, the cluster is trusted to end it.
        now[0] = T0 + timedelta(seconds=TIMEOUT + MARGIN - 1)
        seen = reads(cluster)
        await until(lambda: reads(cluster) >= seen + 3)  # three verifications later
        assert not running.done()
        now[0] = T0 + timedelta(seconds=TIMEOUT + MARGIN)
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, DEADLINE_EXCEEDED)
        assert f"Job {NAME} did not finish within timeoutSeconds (60s)" in outcome.message
        assert "crontask deleted it" in outcome.message
        assert cluster.deleted == [(NAME, "uid-1")]  # its uid as the precondition
        assert NAME not in cluster.jobs
        assert outcome.job is not None
        assert outcome.job.uid == "uid-1"

    asyncio.run(main())


def test_without_timeout_seconds_the_cluster_alone_ends_a_job() -> None:
    async def main() -> None:
        cluster = Deletes()
        now = [T0 + timedelta(days=400)]
        runner = runner_at(cluster, now)
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        await until(lambda: reads(cluster) >= 3)
        assert not running.done()
        cluster.finish(NAME)
        assert (await asyncio.wait_for(running, 5)).status is RunStatus.SUCCEEDED
        assert cluster.deleted == []

    asyncio.run(main())


def resumed(cluster: FakeCluster, runner: JobRunner) -> Any:
    cluster.add(job_manifest(job_task(), record(), namespace="default", name=NAME, env={}))
    # What each pass tells the runner of the task (its timeout among it), before adoption.
    runner.place(job_task(timeoutSeconds=TIMEOUT))
    return asyncio.ensure_future(runner.resume(record(job=JobDetails("default", NAME))).run())


def test_a_resumed_run_counts_its_time_from_its_adoption_when_that_is_later() -> None:
    """The Job was made at T0 and its time is over by the API server's clock; this process
    takes it up later, and counts on its own clock from then."""

    async def main() -> None:
        cluster = Deletes()
        adopted = T0 + timedelta(seconds=TIMEOUT + MARGIN + 1)
        now = [adopted]
        runner = runner_at(cluster, now)
        running = resumed(cluster, runner)
        await until(lambda: reads(cluster) >= 3)
        assert not running.done()
        now[0] = adopted + timedelta(seconds=TIMEOUT + MARGIN)
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, DEADLINE_EXCEEDED)
        assert NAME not in cluster.jobs

    asyncio.run(main())


def test_a_host_clock_ahead_of_the_api_servers_does_not_end_a_job_at_once() -> None:
    """The creation is on the API server's clock: this host's, minutes ahead, said the Job
    was past its time as soon as it was made, and deleted every one."""

    async def main() -> None:
        cluster = Deletes()
        ahead = T0 + timedelta(seconds=3 * (TIMEOUT + MARGIN))  # the Job is made at T0
        now = [ahead]
        runner = runner_at(cluster, now)
        running = asyncio.ensure_future(
            runner.attempt(job_task(timeoutSeconds=TIMEOUT), record()).run()
        )
        await until(lambda: NAME in cluster.jobs)
        await until(lambda: reads(cluster) >= 3)
        assert not running.done()
        assert cluster.deleted == []
        cluster.finish(NAME)
        assert (await asyncio.wait_for(running, 5)).status is RunStatus.SUCCEEDED

    asyncio.run(main())


def test_a_resumed_run_within_its_time_is_followed_to_the_clusters_end() -> None:
    async def main() -> None:
        cluster = Deletes()
        now = [T0 + timedelta(seconds=TIMEOUT)]
        runner = runner_at(cluster, now)
        running = resumed(cluster, runner)
        await until(lambda: reads(cluster) >= 3)
        assert not running.done()
        cluster.finish(NAME, "Failed", "DeadlineExceeded")  # the cluster's deadline, as usual
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
        assert cluster.deleted == []  # the cluster's doing, not crontask's

    asyncio.run(main())
