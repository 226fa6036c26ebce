"""Replicas and Jobs: a dead replica's Job run is not marked interrupted; the task's new owner
adopts it and records its end (three replicas in one process, as ``tests/controller/
test_cluster.py`` runs them, with the in-memory cluster for the Jobs)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from reconciler.controller.jobs import adopt_runs
from reconciler.core.jobs import job_manifest
from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.job import JobRunner
from tests.controller.test_cluster import T0, World, settle
from tests.jobs.test_job_runner import job_task, until
from tests.jobs.twin import FakeCluster


def test_a_dead_replicas_job_run_is_adopted_by_the_tasks_new_owner(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        replicas = world.replicas("a", "b", "c")
        cluster = FakeCluster()
        for replica in replicas:
            runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
            replica.dispatcher.resumable = runner
            runner.progress = replica.dispatcher.progress
            replica.cluster.outlives = lambda r: r.job is not None
        a, b, c = replicas
        await settle(replicas)
        task = sorted(c.owned())[0]
        key = f"default/{task}"
        slot = T0 - timedelta(seconds=30)
        name = f"{task}-{int(slot.timestamp())}"
        record = RunRecord(
            id=run_id(key, slot),
            task=key,
            scheduled_at=slot,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.RUNNING,
            started_at=slot,
            owner=c.id,
            job=JobDetails("default", name),
        )
        world.store.claim(record)  # c started a Job for the task, then died
        cluster.add(job_manifest(job_task(), record, namespace="default", name=name, env={}))

        world.clocks.advance(16)  # past c's lease
        await settle([a, b])
        kept = world.store.get(record.id)
        assert kept is not None
        assert kept.status is RunStatus.RUNNING  # its Job runs on: not interrupted

        owner, other = (a, b) if key in a.scheduler.owned() else (b, a)
        assert await adopt_runs(other.dispatcher, world.store, other.reconciler, cluster.watch) == 0
        assert await adopt_runs(owner.dispatcher, world.store, owner.reconciler, cluster.watch) == 1
        await until(lambda: (world.store.get(record.id) or record).owner == owner.id)
        cluster.finish(name, log="done\n")
        await until(lambda: (world.store.get(record.id) or record).status.finished)
        ended = world.store.get(record.id)
        assert ended is not None
        assert (ended.status, ended.output, ended.owner) == (
            RunStatus.SUCCEEDED,
            "done\n",
            owner.id,
        )
        for replica in replicas:
            await replica.dispatcher.shutdown(0)

    asyncio.run(main())
