"""A live Job whose attempt's stored record is final is no crontask run's: the Job
housekeeping after a full pass deletes it (``controller.jobs.release_jobs``), once (again at
the next pass while the API server refuses the delete, said once a Job). The case
that makes one: ``Replace`` stopped an attempt whose create and the read that followed went
unanswered (its record ``failed``/``Replaced``, the Job maybe written), and crontask stopped
before the API server answered the background read that would have deleted it: the Job ran
to its end beside the run that replaced it, and nothing after a restart looked at it. A Job
whose record is still ``running`` is left to adoption, as before; one the watch shows live
while the API server says it ended (a watch that lags) is left alone.

The in-memory cluster (``tests.jobs.twin``) plays the API server; a restart is a new event
loop, dispatcher and runner on the same store, with a new watch of the same Jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.jobs import release_jobs
from reconciler.core.jobs import job_manifest, job_name
from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger, manual_slot, run_id
from reconciler.runner.base import Actions
from reconciler.runner.job import JobRunner
from reconciler.runner.job_delete import deletes_tried
from reconciler.store import MemoryRunStore, open_store, sqlite_url
from tests.helpers import definition, wait_for
from tests.jobs.conftest import Crontask, Gate, write_task
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until
from tests.jobs.test_lifecycle import ended, live
from tests.jobs.test_stop_during_create import FirstCreateUnheard
from tests.jobs.twin import ApiError, FakeCluster
from tests.k8s.emulator import Emulator
from tests.runner.test_job_delete_retried import RefusesDeletes

NEWER = job_name(KEY, T0 + timedelta(seconds=1), 1, qualified=False)


def restarted(
    jobs: dict[str, Any], store: MemoryRunStore
) -> tuple[FakeCluster, Dispatcher, JobRunner]:
    """The next crontask: its watch lists the Jobs the cluster has (uids kept)."""
    cluster = FakeCluster()
    for job in jobs.values():
        cluster.add(job)
    runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
    dispatcher = Dispatcher(store, owner="h:2:y", clock=lambda: T0, actions=Actions([runner]))
    dispatcher.resumable = runner
    runner.progress = dispatcher.progress
    return cluster, dispatcher, runner


def test_the_job_of_a_replaced_attempt_left_at_shutdown_is_deleted_after_the_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryRunStore()
    cluster = FirstCreateUnheard()

    async def before() -> tuple[str, str]:
        cluster.watch_delivers = False
        cluster.get_errors = 1_000_000  # the API server answers no read until the restart
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        d = Dispatcher(store, owner="h:1:x", clock=lambda: T0, actions=Actions([runner]))
        d.resumable = runner
        runner.progress = d.progress
        task = job_task(concurrencyPolicy="Replace")
        first = d.fire(task, T0)
        await until(lambda: cluster.unheard)
        newer = d.fire(task, T0 + timedelta(seconds=1))
        await until(lambda: (store.get(first.id) or first).status.finished)
        await until(lambda: NEWER in cluster.jobs)
        await d.shutdown(1)  # the background read of the first Job is cancelled with the loop
        return first.id, newer.id

    first, newer = asyncio.run(before())
    replaced = store.get(first)
    assert replaced is not None
    assert (replaced.status, replaced.reason) == (RunStatus.FAILED, "Replaced")
    assert NAME in cluster.jobs  # written although its create went unanswered
    detached = store.get(newer)
    assert detached is not None
    assert detached.status is RunStatus.RUNNING  # the replacing run's Job, for the next start

    async def after() -> None:
        again, d, runner = restarted(cluster.jobs, store)
        handled: set[str] = set()
        said: set[str] = set()
        with caplog.at_level(logging.WARNING, logger="crontask.jobs"):
            assert await release_jobs(d, store, runner, {KEY}, handled, said) == 1
            assert await release_jobs(d, store, runner, {KEY}, handled, said) == 0
        assert NAME not in again.jobs
        assert ("delete", NAME) in again.calls
        told = [r for r in caplog.records if "the record of its run is final" in r.getMessage()]
        assert len(told) == 1
        # The replacing run's Job, whose record is running, is not deleted: it is adopted.
        assert NEWER in again.jobs
        assert [c for c in again.calls if c == ("delete", NEWER)] == []
        assert d.adopt(job_task(concurrencyPolicy="Replace"), detached)
        again.finish(NEWER, log="done\n")
        await until(lambda: (store.get(newer) or detached).status.finished)
        await d.shutdown(0)

    asyncio.run(after())
    ended = store.get(newer)
    assert ended is not None
    assert (ended.status, ended.output) == (RunStatus.SUCCEEDED, "done\n")
    kept = store.get(first)
    assert kept is not None
    assert (kept.status, kept.reason) == (RunStatus.FAILED, "Replaced")  # its record untouched


def test_a_job_the_api_server_says_ended_is_not_deleted_while_the_watch_lags() -> None:
    store = MemoryRunStore()

    async def main() -> None:
        cluster = FakeCluster()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        d = Dispatcher(store, owner="h:2:y", clock=lambda: T0, actions=Actions([runner]))
        claimed = record(job=JobDetails("default", NAME))
        store.claim(claimed)
        cluster.add(job_manifest(job_task(), claimed, namespace="default", name=NAME, env={}))
        cluster.watch_delivers = False  # the watch still shows it running
        cluster.finish(NAME, log="done\n")
        store.complete(
            claimed.finish(RunStatus.SUCCEEDED, finished_at=T0, exit_code=0, job=claimed.job)
        )
        assert await release_jobs(d, store, runner, {KEY}, set(), set()) == 0
        assert NAME in cluster.jobs
        assert [c for c in cluster.calls if c[0] == "delete"] == []
        await d.shutdown(0)

    asyncio.run(main())


@pytest.mark.slow
def test_at_its_start_crontask_deletes_the_live_job_of_a_final_record_and_adopts_the_other(
    crontask: Callable[..., Crontask], emulator: Emulator, tmp_path: Path
) -> None:
    """The real program and API server, as an earlier crontask left them: two live Jobs, the
    record of one final (``Replaced``, its background delete lost with the process), the
    other's ``running``; their owner is a process of this host that is gone. The start
    deletes the first and follows the second to its end."""
    gate = Gate(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    owner = f"{socket.gethostname()}:{dead.pid}:0badc0de"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    store = open_store(sqlite_url(state), writer=True)
    uids: dict[str, str] = {}
    try:
        for name in ("over", "going"):
            path = write_task(tmp_path / "tasks", name, gate.wait("echo done"))
            key = f"default/{name}"
            slot = manual_slot(datetime.now(UTC))
            where = JobDetails("default", job_name(key, slot, 1, qualified=False))
            run = RunRecord(
                id=run_id(key, slot),
                task=key,
                scheduled_at=slot,
                trigger=Trigger.MANUAL,
                status=RunStatus.RUNNING,
                started_at=slot,
                owner=owner,
                job=where,
            )
            task = definition(name, command=None, **yaml.safe_load(path.read_text())["spec"])
            body = job_manifest(task, run, namespace="default", name=where.name, env={})
            job = emulator.create(body)
            uids[name] = job["metadata"]["uid"]
            store.claim(dataclasses.replace(run, job=dataclasses.replace(where, uid=uids[name])))
            if name == "over":
                store.complete(
                    run.finish(
                        RunStatus.FAILED,
                        finished_at=slot,
                        reason="Replaced",
                        message="stopped: Replaced",
                        job=where,
                    )
                )
    finally:
        store.close()
    assert live(emulator, "default.over")

    instance = crontask()
    wait_for("the Job of the final record deleted", lambda: not live(emulator, "default.over"))
    instance.wait_log("the record of its run is final")
    instance.wait_log("run adopted")
    assert [j["metadata"]["uid"] for j in live(emulator, "default.going")] == [uids["going"]]
    gate.open()
    (done,) = wait_for("the adopted run to end", lambda: ended(instance, "default/going"), 15)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "done\n")
    (over,) = ended(instance, "default/over")
    assert (over.status, over.reason) == (RunStatus.FAILED, "Replaced")


def test_a_delete_refused_for_good_is_tried_again_at_the_next_pass() -> None:
    """Nothing retries a 403 in the background: the next housekeeping pass (a resync) tries
    the delete again, as the replaced run's record says, and deletes it once allowed."""
    store = MemoryRunStore()

    async def main() -> None:
        cluster = RefusesDeletes(1, 403)
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        d = Dispatcher(store, owner="h:2:y", clock=lambda: T0, actions=Actions([runner]))
        claimed = record(job=JobDetails("default", NAME))
        store.claim(claimed)
        cluster.add(job_manifest(job_task(), claimed, namespace="default", name=NAME, env={}))
        store.complete(
            claimed.finish(RunStatus.FAILED, finished_at=T0, reason="Replaced", job=claimed.job)
        )
        await until(lambda: bool(runner.running(KEY)))  # the watch has seen it live
        handled: set[str] = set()
        said: set[str] = set()
        assert await release_jobs(d, store, runner, {KEY}, handled, said) == 0  # refused
        assert NAME in cluster.jobs
        assert await release_jobs(d, store, runner, {KEY}, handled, said) == 1  # tried again
        assert NAME not in cluster.jobs
        assert cluster.calls.count(("delete", NAME)) == 2
        await d.shutdown(0)

    asyncio.run(main())


def final_records(store: MemoryRunStore, cluster: FakeCluster, count: int) -> list[str]:
    """``count`` live Jobs whose runs' records are final (timed out); their names."""
    names = []
    for n in range(count):
        at = T0 + timedelta(minutes=n)
        name = job_name(KEY, at, 1, qualified=False)
        claimed = record(at=at, job=JobDetails("default", name))
        store.claim(claimed)
        cluster.add(job_manifest(job_task(), claimed, namespace="default", name=name, env={}))
        store.complete(
            claimed.finish(RunStatus.FAILED, finished_at=at, reason="TimedOut", job=claimed.job)
        )
        names.append(name)
    return names


def test_a_refused_delete_is_tried_at_every_pass_and_said_once_a_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three such Jobs, crontask without the right to delete Jobs: each resync tries each
    again (one DELETE a Job), and the refusal is one warning a Job, not one a Job a resync."""
    store = MemoryRunStore()

    async def main() -> None:
        cluster = RefusesDeletes(9, 403)
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        d = Dispatcher(store, owner="h:2:y", clock=lambda: T0, actions=Actions([runner]))
        names = final_records(store, cluster, 3)
        await until(lambda: len(runner.running(KEY)) == 3)
        handled: set[str] = set()
        said: set[str] = set()
        with caplog.at_level(logging.WARNING, logger="crontask.jobs"):
            for passes in (1, 2, 3):
                assert await release_jobs(d, store, runner, {KEY}, handled, said) == 0
                assert len([c for c in cluster.calls if c[0] == "delete"]) == 3 * passes
            assert await release_jobs(d, store, runner, {KEY}, handled, said) == 3  # allowed
        assert [n for n in names if n in cluster.jobs] == []
        messages = [r.getMessage() for r in caplog.records]
        refused = [m for m in messages if m.startswith("cannot delete a Job")]
        assert len(refused) == 3, messages
        assert len([m for m in messages if m.startswith("job deleted")]) == 3
        await d.shutdown(0)

    asyncio.run(main())


class UnansweredThenRefused(FakeCluster):
    """The first delete gets a ``500`` (a webhook that timed out: tried again in the
    background), the next ``refused`` a ``403`` (the webhook, answering, denies it)."""

    def __init__(self, refused: int) -> None:
        super().__init__()
        self.refused = refused
        self.deletes = 0

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        self.deletes += 1
        if self.deletes == 1:
            raise ApiError("cannot delete Job: HTTP 500: failed calling webhook", 500)
        if self.refused:
            self.refused -= 1
            raise ApiError("cannot delete Job: HTTP 403: admission webhook denied it", 403)
        return await super().delete(namespace, name, uid)


def test_a_delete_unanswered_then_refused_is_tried_again_at_the_next_pass() -> None:
    """A ``500`` starts a retry in the background, which a ``403`` ends: the passes meanwhile
    leave the Job to it, and the next ones try again, as after a ``403`` first."""
    store = MemoryRunStore()

    async def main() -> None:
        cluster = UnansweredThenRefused(2)
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        d = Dispatcher(store, owner="h:2:y", clock=lambda: T0, actions=Actions([runner]))
        (name,) = final_records(store, cluster, 1)
        await until(lambda: bool(runner.running(KEY)))
        (live,) = runner.running(KEY)
        assert live.job is not None
        handled: set[str] = set()
        said: set[str] = set()
        assert await release_jobs(d, store, runner, {KEY}, handled, said) == 0  # the 500
        retry = deletes_tried([live.job.uid])
        assert len(retry) == 1
        assert await release_jobs(d, store, runner, {KEY}, handled, said) == 0  # left to it
        assert cluster.deletes == 1
        await asyncio.wait_for(retry[0], 10)  # the background retry met the first 403
        assert cluster.deletes == 2
        assert await release_jobs(d, store, runner, {KEY}, handled, said) == 0  # second 403
        assert cluster.deletes == 3
        assert await release_jobs(d, store, runner, {KEY}, handled, said) == 1
        assert name not in cluster.jobs
        await d.shutdown(0)

    asyncio.run(main())
