"""A Job crontask stopped (``Replace``, the ``timeoutSeconds`` backstop) whose delete the API
server refuses is deleted all the same: the attempt's end is recorded at once, and the delete
is tried again in the background until it is answered. Until then the Job counts as running,
which it may well be. With the in-memory cluster (``tests.jobs.twin.FakeCluster``)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from http import HTTPStatus

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunStatus
from reconciler.runner import job_delete
from reconciler.runner.job import DEADLINE_EXCEEDED, JobRunner
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until, wired
from tests.jobs.twin import ApiError, FakeCluster


class RefusesDeletes(FakeCluster):
    """The next ``refused`` deletes answer ``status`` (503: tried again in the background;
    403: refused for good)."""

    def __init__(self, refused: int, status: int = 503) -> None:
        super().__init__()
        self.refused = refused
        self.status = status

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        if self.refused:
            self.refused -= 1
            self.calls.append(("delete", name))
            phrase = HTTPStatus(self.status).phrase
            raise ApiError(f"cannot delete Job: HTTP {self.status} {phrase}", self.status)
        return await super().delete(namespace, name, uid)


def deletes(cluster: FakeCluster) -> int:
    return cluster.calls.count(("delete", NAME))


def test_a_replaced_job_whose_delete_fails_is_deleted_later() -> None:
    async def main() -> None:
        cluster = RefusesDeletes(2)
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        attempt = runner.attempt(job_task(), record())
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: NAME in cluster.jobs)
        attempt.stop("Replaced")
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "Replaced")
        assert outcome.message == (
            f"stopped: Replaced; Job {NAME} could not be deleted yet (cannot delete Job: "
            "HTTP 503 Service Unavailable); crontask tries again until it is"
        )
        assert NAME in cluster.jobs  # the end is recorded without waiting for the delete
        assert [r.id for r in runner.running(KEY)]  # it counts as running meanwhile
        await until(lambda: NAME not in cluster.jobs)
        assert deletes(cluster) == 3
        assert runner.running(KEY) == []

    asyncio.run(main())


def test_a_job_past_its_deadline_whose_delete_fails_is_deleted_later() -> None:
    async def main() -> None:
        cluster = RefusesDeletes(1)
        now = [T0]
        runner = JobRunner(
            cluster,
            namespace="default",
            verify_seconds=0.05,
            deadline_margin=5,
            clock=lambda: now[0],
        )
        running = asyncio.ensure_future(runner.attempt(job_task(timeoutSeconds=60), record()).run())
        await until(lambda: NAME in cluster.jobs)
        now[0] = T0 + timedelta(seconds=65)
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, DEADLINE_EXCEEDED)
        assert "crontask could not delete it yet" in outcome.message
        await until(lambda: NAME not in cluster.jobs)
        assert deletes(cluster) == 2

    asyncio.run(main())


def test_replace_does_not_leave_two_jobs_running_when_a_delete_fails() -> None:
    """The dispatcher: the new slot's Job starts at once, and the old one goes soon after."""
    store = MemoryRunStore()
    now = [T0]

    def clock() -> datetime:
        return now[0]

    async def main() -> None:
        cluster = RefusesDeletes(1)
        d, runner = wired(cluster, store, clock)
        task = job_task(concurrencyPolicy="Replace")
        first = d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T0 + timedelta(minutes=1)
        second = d.fire(task, now[0])
        # The new Job waited for the delete, tried again, to go through: never two at once.
        await until(lambda: NAME not in cluster.jobs and len(cluster.jobs) == 1)
        replaced = store.get(first.id)
        assert replaced is not None
        assert (replaced.status, replaced.reason) == (RunStatus.FAILED, "Replaced")
        await until(lambda: NAME not in cluster.jobs)
        assert [r.id for r in runner.running(KEY)] == [second.id]
        await d.shutdown(0)

    asyncio.run(main())


def test_a_job_still_live_after_its_replaced_run_is_deleted_by_the_next_crontask() -> None:
    """The API server refused the delete until crontask stopped: the run is recorded
    ``Replaced``, its Job runs on. The next crontask, meeting it at the task's next slot,
    deletes it, and leaves its record as it was."""
    store = MemoryRunStore()
    cluster = RefusesDeletes(10_000)
    now = [T0]

    def started(policy: str, slot: datetime) -> tuple[Dispatcher, JobRunner]:
        d, runner = wired(cluster, store, lambda: now[0])
        now[0] = slot
        d.fire(job_task(concurrencyPolicy=policy), slot)
        return d, runner

    async def before() -> str:
        d, _ = started("Replace", T0)
        await until(lambda: NAME in cluster.jobs)
        d, _ = started("Replace", T0 + timedelta(minutes=1))
        # The second slot waits for the delete, tried again (its Job is never created); the
        # replaced run's record is written meanwhile (by the recorder's thread).
        await until(lambda: cluster.refused < 10_000 and len(job_delete._DELETES) == 1)
        await until(lambda: getattr(store.get(record().id), "status", None) is RunStatus.FAILED)
        replaced = store.get(record().id)
        assert replaced is not None
        assert (replaced.status, replaced.reason) == (RunStatus.FAILED, "Replaced")
        assert len(cluster.jobs) == 1  # still: the second slot's Job is not created
        await d.shutdown(0)  # the Jobs run on; the delete tried again ends with the process
        return replaced.message or ""

    message = asyncio.run(before())
    assert NAME in cluster.jobs
    cluster.refused = 0

    async def after() -> None:
        d, _ = started("Allow", T0 + timedelta(minutes=2))
        # The first's deleted, and the third slot's Job created.
        await until(lambda: NAME not in cluster.jobs and len(cluster.jobs) == 1)
        await d.shutdown(0)

    asyncio.run(after())
    kept = store.get(record().id)
    assert kept is not None
    assert (kept.status, kept.reason, kept.message) == (RunStatus.FAILED, "Replaced", message)
