"""A Job that ended while no crontask followed it (crontask was down, its replica died): the
run adopted then ends when the Job did, by the Job's own account (``completionTime``, else
its terminal condition's ``lastTransitionTime``), as CronJob's ``lastSuccessfulTime`` does,
not when crontask came back; never later than now nor before the run's start (the Job's
times are on the API server's clock). A Job seen ending while followed ends when it was seen."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from reconciler.core.jobs import job_manifest
from reconciler.core.runs import JobDetails, RunStatus
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until, wired
from tests.jobs.twin import FakeCluster

STARTED = T0 - timedelta(minutes=10)  # 11:50, by the earlier crontask
NOW = T0 + timedelta(hours=1)  # 13:00, when crontask adopts it


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("kind", "field", "ended", "recorded"),
    [
        ("Complete", "completionTime", T0 + timedelta(seconds=5), T0 + timedelta(seconds=5)),
        ("Failed", "lastTransitionTime", T0 + timedelta(seconds=7), T0 + timedelta(seconds=7)),
        ("Complete", "completionTime", NOW + timedelta(hours=2), NOW),  # a server clock ahead
        ("Complete", "completionTime", STARTED - timedelta(hours=1), STARTED),  # one behind
    ],
)
def test_an_adopted_run_ends_when_its_job_did(
    kind: str, field: str, ended: datetime, recorded: datetime
) -> None:
    store = MemoryRunStore()

    async def main() -> None:
        cluster = FakeCluster()
        d, _ = wired(cluster, store, lambda: NOW, owner="h:2:new")
        old = record(started_at=STARTED, owner="h:1:old", job=JobDetails("default", NAME))
        store.claim(old)
        cluster.add(job_manifest(job_task(), old, namespace="default", name=NAME, env={}))
        cluster.finish(NAME, kind, exit_code=0 if kind == "Complete" else 1)
        status = cluster.jobs[NAME]["status"]
        status.pop("completionTime", None)
        if field == "completionTime":
            status[field] = stamp(ended)
        else:
            status["conditions"][0][field] = stamp(ended)
        assert d.adopt(job_task(), old)
        await until(lambda: (store.get(old.id) or old).status.finished)
        await d.shutdown(0)

    asyncio.run(main())
    done = store.get(record().id)
    assert done is not None
    assert done.status is (RunStatus.SUCCEEDED if kind == "Complete" else RunStatus.FAILED)
    assert done.finished_at == recorded
    assert done.duration_ms == int((recorded - STARTED).total_seconds() * 1000)


def test_a_job_seen_ending_live_ends_when_it_was_seen() -> None:
    store = MemoryRunStore()

    async def main() -> None:
        cluster = FakeCluster()
        d, _ = wired(cluster, store, lambda: NOW)
        fired = d.fire(
            job_task(),
            T0,
        )
        await until(lambda: NAME in cluster.jobs)
        cluster.finish(NAME)  # its completionTime says 12:00:05
        await until(lambda: (store.get(fired.id) or fired).status.finished)
        await d.shutdown(0)

    asyncio.run(main())
    (done,) = store.attempts(record().id)
    assert (done.status, done.finished_at) == (RunStatus.SUCCEEDED, NOW)
    assert done.task == KEY
