"""A Job crontask stopped (``Replace``, the ``timeoutSeconds`` backstop) whose delete the API
server refuses is deleted all the same: the attempt's end is recorded at once, and the delete
is tried again in the background until it is answered. Until then the Job counts as running,
which it may well be. With the in-memory cluster (``tests.jobs.twin.FakeCluster``)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunStatus
from reconciler.runner import job_delete
from reconciler.runner.job import DEADLINE_EXCEEDED, JobRunner
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until, wired
from tests.jobs.twin import ApiError, FakeCluster


class RefusesDeletes(FakeCluster):
    """The next ``refused`` deletes answer 503."""

    def __init__(self, refused: int) -> None:
        super().__init__()
        self.refused = refused

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        if self.refused:
            self.refused -= 1
            self.calls.append(("delete", name))
            raise ApiError("cannot delete Job: HTTP 503 Service Unavailable", 503)
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
        await until(lambda: len(cluster.jobs) == 2)  # the new Job did not wait for the delete
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
        await until(lambda: len(cluster.jobs) == 2 and cluster.refused < 10_000)
        replaced = store.get(record().id)
        assert replaced is not None
        assert (replaced.status, replaced.reason) == (RunStatus.FAILED, "Replaced")
        await d.shutdown(0)  # the Jobs run on; the delete tried again ends with the process
        return replaced.message or ""

    message = asyncio.run(before())
    assert NAME in cluster.jobs
    cluster.refused = 0

    async def after() -> None:
        d, _ = started("Allow", T0 + timedelta(minutes=2))
        # The second slot's Job, adopted, and the third's: the first's deleted.
        await until(lambda: NAME not in cluster.jobs and len(cluster.jobs) == 2)
        await d.shutdown(0)

    asyncio.run(after())
    kept = store.get(record().id)
    assert kept is not None
    assert (kept.status, kept.reason, kept.message) == (RunStatus.FAILED, "Replaced", message)


class Refuses(FakeCluster):
    """Every delete answers ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        self.calls.append(("delete", name))
        raise ApiError(f"cannot delete Job: HTTP {self.status}", self.status)


def made(cluster: FakeCluster, count: int) -> bool:
    return len(cluster.jobs) == count


def replacing(cluster: FakeCluster, slots: int) -> Callable[[], Awaitable[None]]:
    """A Replace task whose every slot stops the Job of the one before."""
    store = MemoryRunStore()
    now = [T0]

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0], verify_seconds=0.02)
        for minute in range(slots):
            now[0] = T0 + timedelta(minutes=minute)
            d.fire(job_task(concurrencyPolicy="Replace"), now[0])
            await until(functools.partial(made, cluster, minute + 1))

    return main


def test_a_job_whose_delete_is_refused_for_a_while_has_one_delete_tried_again() -> None:
    """Every slot of a Replace task meets the Jobs it could not delete yet: it does not start
    one more retry for each of them each time (they grew as the square of the slots)."""
    cluster = Refuses(503)

    async def main() -> None:
        await replacing(cluster, 10)()
        stopped = len(cluster.jobs) - 1
        await until(lambda: len(job_delete._DELETES) == stopped)
        for name in list(cluster.jobs):  # they end on their own: nothing left to stop
            cluster.finish(name)
        await until(lambda: not job_delete._DELETES)

    asyncio.run(main())


def test_a_delete_refused_for_good_is_not_tried_again() -> None:
    """No right to delete Jobs (403): said in the run's record, not tried every 30 s."""
    cluster = Refuses(403)

    async def main() -> None:
        await replacing(cluster, 2)()
        first = deletes(cluster)
        assert first >= 1
        assert job_delete._DELETES == {}

    asyncio.run(main())
