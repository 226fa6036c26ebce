"""A run adopted after a restart whose Job failed while no crontask followed it, when a later
slot of its task already runs here (the restart's catch-up, decided before the adoption: the
failed Job was no longer running, so ``Forbid`` and ``Replace`` rightly let it start). Its
retry would make a Job beside the newer run's, which neither policy ever allows: under
``Forbid`` or ``Replace`` it is recorded not started (``Superseded``: a later slot came), and
no Job is made for it; under ``Allow`` it runs as any retry does."""

from __future__ import annotations

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunStatus, Trigger
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import (
    KEY,
    NAME,
    OLD_NAME,
    T0,
    dispatch,
    job_task,
    left_running,
    until,
)
from tests.jobs.twin import FakeCluster


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
def test_the_retry_of_an_adopted_run_does_not_start_beside_a_newer_run(policy: str) -> None:
    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        task = job_task(concurrencyPolicy=policy, retry={"limit": 2, "backoffSeconds": 0})
        old = left_running(store, cluster)
        cluster.finish(OLD_NAME, "Failed", exit_code=1, log="nope\n")  # while crontask was down
        newer = d.fire(task, T0, Trigger.CATCHUP)
        assert newer.status is RunStatus.RUNNING, newer.message
        await until(lambda: NAME in cluster.jobs)
        assert d.adopt(task, old)
        await until(lambda: len(store.attempts(old.id)) == 2)
        await until(lambda: store.attempts(old.id)[1].status.finished)
        first, retry = store.attempts(old.id)
        assert (first.status, first.reason) == (RunStatus.FAILED, "BackoffLimitExceeded")
        assert (retry.status, retry.reason, retry.trigger) == (
            RunStatus.SKIPPED,
            "Superseded",
            Trigger.RETRY,
        )
        assert "later slot" in (retry.message or "")
        assert f"{OLD_NAME}-2" not in cluster.jobs
        now = store.get(newer.id)
        assert (now or newer).status is RunStatus.RUNNING  # left as it was
        assert [r.id for r in d.active(KEY)] == [newer.id]

    dispatch(body)


def test_under_allow_the_retry_of_an_adopted_run_runs_beside_a_newer_one() -> None:
    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        task = job_task(concurrencyPolicy="Allow", retry={"limit": 1, "backoffSeconds": 0})
        old = left_running(store, cluster)
        cluster.finish(OLD_NAME, "Failed", exit_code=1)
        d.fire(task, T0, Trigger.CATCHUP)
        await until(lambda: NAME in cluster.jobs)
        assert d.adopt(task, old)
        await until(lambda: f"{OLD_NAME}-2" in cluster.jobs)

    dispatch(body)
