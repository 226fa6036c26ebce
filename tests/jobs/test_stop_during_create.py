"""A stop (``Replace``, shutdown) that comes while an unanswered create is being tried again:
the create may have been written, so the attempt's name is read before anything is said. Its
Job there is stopped as any other (``Replace`` deletes it; shutdown detaches, the ``running``
record naming it): "stopped before its Job was created" left the old Job running beside the
new one, and recorded ``interrupted`` a run whose Job lived on. When even that read goes
unanswered, shutdown still detaches (the next start looks), and ``Replace`` has the name read
again in the background and the Job deleted once found."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.jobs import job_name
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Actions
from reconciler.runner.job import JobRunner
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until
from tests.jobs.twin import ApiError, FakeCluster


class FirstCreateUnheard(FakeCluster):
    """The first create is written and its answer lost; the others are answered."""

    unheard = False

    async def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if self.unheard:
            return await super().create(body)
        self.unheard = True
        self.calls.append(("create", body["metadata"]["name"]))
        self.add(body)
        raise ApiError("cannot create Job: ReadTimeoutError: read timed out")


@pytest.mark.parametrize("stop", ["Replace", "Shutdown"])
def test_a_stop_while_an_unanswered_create_waits_stops_the_job_it_made(stop: str) -> None:
    store = MemoryRunStore()

    async def main() -> None:
        cluster = FirstCreateUnheard()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        d = Dispatcher(store, owner="h:1:x", clock=lambda: T0, actions=Actions([runner]))
        d.resumable = runner
        runner.progress = d.progress
        task = job_task(concurrencyPolicy="Replace")
        first = d.fire(task, T0)
        await until(lambda: cluster.unheard)  # the attempt now waits to create again
        uid = cluster.jobs[NAME]["metadata"]["uid"]
        if stop == "Replace":
            d.fire(task, T0 + timedelta(seconds=1))
            newer = job_name(KEY, T0 + timedelta(seconds=1), 1, qualified=False)
            await until(lambda: newer in cluster.jobs)
            assert list(cluster.jobs) == [newer]  # the first Job deleted, not left beside it
            await until(lambda: (store.get(first.id) or first).status.finished)
            ended = store.get(first.id)
            assert ended is not None
            assert (ended.status, ended.reason) == (RunStatus.FAILED, "Replaced")
            assert f"Job {NAME} deleted" in (ended.message or "")
            await d.shutdown(0)
        else:
            await d.shutdown(1)
            kept = store.get(first.id)
            assert kept is not None
            # Never "interrupted" while its Job lives: running, naming it, for the next start.
            assert kept.status is RunStatus.RUNNING
            assert kept.job is not None
            assert (kept.job.name, kept.job.uid) == (NAME, uid)
            assert NAME in cluster.jobs
        assert [c for c in cluster.calls if c[0] == "create"][:1] == [("create", NAME)]

    asyncio.run(main())


def unknown_attempt(stop: str) -> tuple[FirstCreateUnheard, Any]:
    """An attempt stopped after its create went unanswered, whose read fails too (and the
    watch has not seen the Job)."""
    cluster = FirstCreateUnheard()
    cluster.watch_delivers = False
    cluster.get_errors = 1_000_000
    runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
    attempt = runner.attempt(job_task(), record())

    async def stopped() -> Any:
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: cluster.unheard)
        attempt.stop(stop)
        return await asyncio.wait_for(running, 5)

    return cluster, stopped


def test_a_shutdown_unsure_whether_the_job_was_made_detaches_naming_it() -> None:
    async def main() -> None:
        cluster, stopped = unknown_attempt("Shutdown")
        outcome = await stopped()
        assert (outcome.status, outcome.reason) == (RunStatus.RUNNING, "Shutdown")
        assert outcome.detached  # the record stays running: the next start looks for the Job
        assert outcome.job is not None
        assert (outcome.job.name, outcome.job.uid) == (NAME, None)
        assert NAME in cluster.jobs

    asyncio.run(main())


def test_a_replace_unsure_whether_the_job_was_made_deletes_it_once_found() -> None:
    async def main() -> None:
        cluster, stopped = unknown_attempt("Replaced")
        outcome = await stopped()
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "Replaced")
        assert "whether Job" in outcome.message
        assert "is unknown" in outcome.message
        assert NAME in cluster.jobs
        cluster.get_errors = 0  # the API server answers again
        await until(lambda: NAME not in cluster.jobs)
        assert ("delete", NAME) in cluster.calls

    asyncio.run(main())
