"""A stop (``Replace``, a run asked for now under ``Replace``) that reaches an attempt whose Job
the watch has already seen end, before the attempt took that end in (both came in the same
turn of the event loop, or while it looked at the Job's pods): the Job's own outcome is the
attempt's (a succeeded Job is not recorded ``failed``, ``Replaced``), and the Job, over
already, is not deleted (it goes by the history limits, as any finished Job). A stop of a Job
still running deletes it as before (``test_job_runner.test_stop``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.jobs import job_name
from reconciler.core.runs import RunStatus
from reconciler.runner.job import JobRunner
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, dispatch, job_task, play, record, until
from tests.jobs.twin import FakeCluster


@pytest.mark.parametrize(
    ("kind", "status", "exit_code"),
    [("Complete", RunStatus.SUCCEEDED, 0), ("Failed", RunStatus.FAILED, 1)],
)
def test_a_job_seen_ended_when_the_stop_comes_keeps_its_own_outcome(
    kind: str, status: RunStatus, exit_code: int
) -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        attempt = runner.attempt(job_task(), record())
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: NAME in cluster.jobs)
        await asyncio.sleep(0.01)  # the attempt follows the Job, waiting for a change
        cluster.finish(NAME, kind, exit_code=exit_code, log="all done\n")
        attempt.stop("Replaced")  # the same turn: the attempt has not looked yet
        outcome = await running
        assert (outcome.status, outcome.exit_code) == (status, exit_code)
        assert outcome.reason != "Replaced"
        assert outcome.output == "all done\n"
        assert NAME in cluster.jobs  # over already: left to the history limits
        assert ("delete", NAME) not in [(c[0], c[1]) for c in cluster.calls]

    play(body)


def test_the_replacing_run_starts_at_once_beside_no_job() -> None:
    """The run that replaces it does not wait for a delete that never comes: the Job is over."""

    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        task = job_task(concurrencyPolicy="Replace")
        first = d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        await asyncio.sleep(0.01)
        cluster.finish(NAME, log="all done\n")
        second = d.fire(task, T0 + timedelta(minutes=1))
        await until(lambda: job_name(KEY, second.scheduled_at, 1, qualified=False) in cluster.jobs)
        done = store.get(first.id)
        assert done is not None
        assert (done.status, done.output) == (RunStatus.SUCCEEDED, "all done\n")
        assert NAME in cluster.jobs

    dispatch(body)
