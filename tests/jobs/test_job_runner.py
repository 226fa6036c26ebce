"""The job action and the dispatcher, with an in-memory cluster (``twin.FakeCluster``): the
paths a real cluster rarely takes on demand (a name taken by someone else's Job, a 409 of this
very attempt, API errors, a watch that never delivers, a Job that vanishes) and the policies
on Jobs the dispatcher did not start (adoption)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.jobs import finished, job_manifest, job_name
from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions, Outcome
from reconciler.runner.job import JobRun, JobRunner
from reconciler.sources.kubernetes_jobs import JobWatch
from reconciler.store import MemoryRunStore
from tests.helpers import definition
from tests.jobs.twin import ApiError, FakeCluster

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
KEY = "default/job"
POD = {"containers": [{"name": "main", "image": "busybox"}]}


def job_task(**spec: Any) -> Definition:
    spec.setdefault("job", {"spec": {"template": {"spec": POD}}})
    return definition("job", command=None, **spec)


def record(attempt: int = 1, at: datetime = T0, **fields: Any) -> RunRecord:
    base = RunRecord(
        id=run_id(KEY, at),
        task=KEY,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        attempt=attempt,
        started_at=at,
        owner="h:1:x",
    )
    return dataclasses.replace(base, **fields)


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


def play(body: Callable[[FakeCluster, JobRunner], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        cluster = FakeCluster()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        await body(cluster, runner)

    asyncio.run(main())


NAME = "job-1796040000"


# -- one attempt -------------------------------------------------------------------------------


def test_an_attempt_announces_its_job_creates_it_and_reads_the_end() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        announced: list[RunRecord] = []

        async def progress(r: RunRecord) -> None:
            announced.append(r)
            assert not cluster.jobs if r.job and not r.job.uid else True

        runner.progress = progress
        attempt = runner.attempt(job_task(), record())
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: NAME in cluster.jobs)
        cluster.finish(NAME, exit_code=0, log="all good\n")
        outcome = await running
        assert (outcome.status, outcome.exit_code, outcome.output) == (
            RunStatus.SUCCEEDED,
            0,
            "all good\n",
        )
        assert outcome.job is not None
        assert (outcome.job.pod, outcome.job.node) == (f"{NAME}-abcde", "node-1")
        # The name before the Job exists (a restart from here on finds the run), then the uid.
        assert [(r.job.namespace, r.job.name, r.job.uid) for r in announced if r.job] == [
            ("default", NAME, None),
            ("default", NAME, cluster.jobs[NAME]["metadata"]["uid"]),
        ]

    play(body)


class EndsAfterALook(FakeCluster):
    """A Job that ends right after the action has looked at it in the cache (the watch's
    event is queued on the loop while the action decides to wait)."""

    ending = False

    def cached(self, namespace: str, name: str) -> dict[str, Any] | None:
        job = super().cached(namespace, name)
        if job is not None and finished(job) is None and not self.ending:
            self.ending = True
            asyncio.get_running_loop().call_soon(self.finish, name)
        return job


def test_a_job_that_ends_between_the_look_and_the_wait_is_seen_at_once() -> None:
    """Seen by the change it makes, not by the next verification (an hour away here): the
    wait for a change starts before the look."""

    async def main() -> None:
        cluster = EndsAfterALook()
        runner = JobRunner(cluster, namespace="default", verify_seconds=3600)
        outcome = await asyncio.wait_for(runner.attempt(job_task(), record()).run(), 10)
        assert (outcome.status, outcome.exit_code) == (RunStatus.SUCCEEDED, 0)
        assert cluster.ending

    asyncio.run(main())


def test_the_watch_sets_change_waiters_and_forgets_cancelled_ones() -> None:
    """A Job followed for a day waits for a change some 2 900 times (once per verification):
    the waits given up must not pile up."""

    async def main() -> None:
        watch = JobWatch(client.ApiClient(), ["default"])
        try:
            kept = watch.when_changed("default", "a")
            dropped = watch.when_changed("default", "a")
            idle = watch.when_changed("default", "b")
            dropped.cancel()
            idle.cancel()
            await asyncio.sleep(0)  # the done callbacks run on the loop
            watch._changed({"default/a"})  # what the informer's thread schedules on the loop
            await asyncio.sleep(0)
            assert kept.done()
            assert not kept.cancelled()
            assert watch._waiters == {}
        finally:
            watch.stop()

    asyncio.run(main())


def test_a_409_of_this_very_attempt_is_adopted_not_duplicated() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        mine = job_manifest(job_task(), record(), namespace="default", name=NAME, env={})
        cluster.add(mine)  # created before a restart, for the same claim
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: ("create", NAME) in cluster.calls)
        cluster.finish(NAME, "Failed", exit_code=4, log="oops\n")
        outcome = await running
        assert (outcome.status, outcome.reason, outcome.exit_code) == (
            RunStatus.FAILED,
            "BackoffLimitExceeded",
            4,
        )
        assert [c for c in cluster.calls if c[0] == "create"] == [("create", NAME)]

    play(body)


def test_a_name_taken_by_another_job_fails_and_leaves_it_alone() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        stranger = job_manifest(job_task(), record(), namespace="default", name=NAME, env={})
        del stranger["metadata"]["labels"]  # not crontask's: no run-id label
        cluster.add(stranger)
        outcome = await runner.attempt(job_task(), record()).run()
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "JobNameTaken")
        assert NAME in cluster.jobs
        assert not [c for c in cluster.calls if c[0] == "delete"]

    play(body)


def test_transient_create_errors_are_retried_permanent_ones_fail() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        cluster.create_errors = [ApiError("HTTP 503", 503), ApiError("reset", None)]
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs, timeout=10)
        cluster.finish(NAME)
        assert (await running).status is RunStatus.SUCCEEDED

        cluster.create_errors = [ApiError("HTTP 403 Forbidden: jobs is forbidden", 403)]
        outcome = await runner.attempt(job_task(), record(at=T0.replace(minute=1))).run()
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "JobCreateFailed")
        assert "403" in outcome.message

    play(body)


class CreatedUnanswered(FakeCluster):
    """An API server that makes the Job and then fails to answer the create, every time (a
    client-side timeout after the write)."""

    async def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        name = body["metadata"]["name"]
        self.calls.append(("create", name))
        if name not in self.jobs:
            self.add(body)
        raise ApiError("cannot create Job: ReadTimeoutError: read timed out")


def test_a_job_made_although_no_create_was_answered_is_followed_not_made_again() -> None:
    async def main() -> None:
        cluster = CreatedUnanswered()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, create_attempts=2)
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        cluster.finish(NAME, log="ran once\n")
        outcome = await asyncio.wait_for(running, 10)
        assert (outcome.status, outcome.output) == (RunStatus.SUCCEEDED, "ran once\n")
        assert ("get", NAME) in cluster.calls  # asked once the attempts ran out
        # A Job of that name that is another run's is still not taken for this one.
        later = record(at=T0.replace(minute=1))
        name = job_name(KEY, later.scheduled_at, 1, qualified=False)
        other = job_manifest(
            job_task(), record(at=T0.replace(minute=2)), namespace="default", name=name, env={}
        )
        cluster.add(other)
        outcome = await asyncio.wait_for(runner.attempt(job_task(), later).run(), 10)
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "JobCreateFailed")

    asyncio.run(main())


def test_a_watch_that_never_delivers_is_healed_by_reading_the_job() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        cluster.watch_delivers = False
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        cluster.finish(NAME, log="seen at last\n")
        outcome = await asyncio.wait_for(running, 5)  # verify_seconds is 0.05 here
        assert (outcome.status, outcome.output) == (RunStatus.SUCCEEDED, "seen at last\n")

    play(body)


def test_an_api_server_away_is_waited_for_not_taken_for_an_outcome() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        cluster.add(job_manifest(job_task(), record(), namespace="default", name=NAME, env={}))
        cluster.finish(NAME, log="ok\n")
        cluster._cache.clear()  # not in the watch's cache: the resume must read it
        cluster.get_errors = 3
        outcome = await runner.resume(record(job=JobDetails("default", NAME))).run()
        assert (outcome.status, outcome.output) == (RunStatus.SUCCEEDED, "ok\n")
        assert [c for c in cluster.calls if c[0] == "get"].count(("get", NAME)) >= 4

    play(body)


def test_a_job_deleted_while_it_runs_ends_the_attempt() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        cluster.vanish(NAME)
        outcome = await running
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "JobDeleted")

    play(body)


def test_a_log_that_cannot_be_read_says_why() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        cluster.log_error = ApiError("pods/log of job-x: HTTP 403 Forbidden", 403)
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        cluster.finish(NAME)
        outcome = await running
        assert outcome.output == ""
        assert outcome.job is not None
        assert outcome.job.log_error == "pods/log of job-x: HTTP 403 Forbidden"

    play(body)


@pytest.mark.parametrize(
    ("reason", "status", "deleted"),
    [("Shutdown", RunStatus.RUNNING, False), ("Replaced", RunStatus.FAILED, True)],
)
def test_stop(reason: str, status: RunStatus, deleted: bool) -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        attempt = runner.attempt(job_task(), record())
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: NAME in cluster.jobs)
        cluster.logs[f"{NAME}-abcde"] = "half way\n"
        attempt.stop(reason)
        outcome = await running
        assert (outcome.status, outcome.reason) == (status, reason)
        assert (NAME not in cluster.jobs) is deleted
        assert outcome.detached is (reason == "Shutdown")  # the record stays running

    play(body)


def test_a_stop_before_the_start_creates_nothing() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        attempt = runner.attempt(job_task(), record())
        attempt.stop("Replaced")
        outcome = await attempt.run()
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "Replaced")
        assert cluster.calls == []

    play(body)


def test_resume_follows_the_named_job_or_says_it_is_gone() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        where = JobDetails("default", NAME)
        gone = await runner.resume(record(job=where)).run()
        assert (gone.status, gone.reason) == (RunStatus.INTERRUPTED, "JobGone")
        assert not [c for c in cluster.calls if c[0] == "create"]  # resuming never creates

        cluster.add(job_manifest(job_task(), record(), namespace="default", name=NAME, env={}))
        cluster.finish(NAME, exit_code=0)
        done = await runner.resume(record(job=where)).run()  # it ended while nobody watched
        assert done.status is RunStatus.SUCCEEDED

        other = await runner.resume(record(job=where, attempt=2)).run()  # not this attempt's
        assert other.reason == "JobGone"

    play(body)


def test_the_attempts_job_name_follows_namespace_and_attempt() -> None:
    runner = JobRunner(FakeCluster(), namespace="default")  # --job-namespace
    assert runner.where(job_task(), record()) == JobDetails("default", NAME)
    elsewhere = job_task(job={"namespace": "batch", "spec": {"template": {"spec": POD}}})
    second = runner.where(elsewhere, record(attempt=2))
    assert second.namespace == "batch"
    assert second.name.startswith("job-")
    assert second.name.endswith("-1796040000-2")
    assert second.name != f"{NAME}-2"  # another namespace: the key's hash keeps it unique
    assert isinstance(runner.attempt(job_task(), record()), JobRun)


# -- the dispatcher and Jobs it did not start ----------------------------------------------------


def wired(
    cluster: FakeCluster,
    store: MemoryRunStore,
    clock: Callable[[], datetime],
    owner: str = "h:1:x",
    verify_seconds: float = 0.05,
) -> tuple[Dispatcher, JobRunner]:
    """A dispatcher that runs, follows and adopts Jobs in ``cluster``, as ``crontask run``'s."""
    runner = JobRunner(cluster, namespace="default", verify_seconds=verify_seconds)
    d = Dispatcher(store, owner=owner, clock=clock, actions=Actions([runner]))
    d.resumable = runner
    runner.progress = d.progress
    return d, runner


def dispatch(
    body: Callable[[Dispatcher, FakeCluster, MemoryRunStore], Coroutine[Any, Any, None]],
) -> MemoryRunStore:
    store = MemoryRunStore()

    async def main() -> None:
        cluster = FakeCluster()
        d, _ = wired(cluster, store, lambda: T0, owner="h:2:new")
        await body(d, cluster, store)
        await d.shutdown(0)

    asyncio.run(main())
    return store


EARLIER = T0.replace(minute=0, second=0).replace(hour=11)
OLD_NAME = "job-1796036400"


def left_running(store: MemoryRunStore, cluster: FakeCluster) -> RunRecord:
    """A Job run an earlier crontask (h:1:old) started and never saw end."""
    old = record(at=EARLIER, owner="h:1:old", job=JobDetails("default", OLD_NAME))
    store.claim(old)
    cluster.add(job_manifest(job_task(), old, namespace="default", name=OLD_NAME, env={}))
    return old


@pytest.mark.parametrize(
    ("policy", "old_reason", "new_status"),
    [
        ("Forbid", None, RunStatus.SKIPPED),
        ("Replace", "Replaced", RunStatus.RUNNING),
        ("Allow", None, RunStatus.RUNNING),
    ],
)
def test_policies_count_the_jobs_running_in_the_cluster(
    policy: str, old_reason: str | None, new_status: RunStatus
) -> None:
    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        old = left_running(store, cluster)
        fired = d.fire(job_task(concurrencyPolicy=policy), T0)
        await until(lambda: (store.get(fired.id) or fired).status is new_status)
        if old_reason is not None:
            await until(lambda: (store.get(old.id) or old).status.finished)
            replaced = store.get(old.id)
            assert replaced is not None
            assert (replaced.status, replaced.reason, replaced.owner) == (
                RunStatus.FAILED,
                old_reason,
                "h:2:new",
            )
            assert OLD_NAME not in cluster.jobs
        else:
            assert old.id in {r.id for r in d.active(KEY)}  # adopted: followed from now on
            await until(lambda: (store.get(old.id) or old).owner == "h:2:new")
            taken = store.get(old.id)
            assert taken is not None
            assert taken.status is RunStatus.RUNNING

    dispatch(body)


def test_an_adopted_run_is_recorded_once_its_job_ends_and_retried_as_the_task_says() -> None:
    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        old = left_running(store, cluster)
        assert d.adopt(job_task(retry={"limit": 1, "backoffSeconds": 0}), old)
        assert not d.adopt(job_task(), old)  # followed already
        cluster.finish(OLD_NAME, "Failed", exit_code=1, log="nope\n")
        await until(lambda: len(store.attempts(old.id)) == 2)
        first, second = store.attempts(old.id)
        assert (first.status, first.output, first.owner) == (RunStatus.FAILED, "nope\n", "h:2:new")
        assert (second.status, second.trigger) == (RunStatus.RUNNING, Trigger.RETRY)
        await until(lambda: f"{OLD_NAME}-2" in cluster.jobs)
        cluster.finish(f"{OLD_NAME}-2")
        await until(lambda: (store.get(old.id, 2) or second).status is RunStatus.SUCCEEDED)

    dispatch(body)


def test_an_adopted_run_recorded_by_someone_else_meanwhile_is_not_followed() -> None:
    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        old = left_running(store, cluster)
        store.complete(old.finish(RunStatus.SUCCEEDED, finished_at=T0))
        d.adopt(job_task(), old)
        await until(lambda: not d.active(KEY))
        after = store.get(old.id)
        assert after is not None
        assert (after.status, after.owner) == (RunStatus.SUCCEEDED, "h:1:old")

    dispatch(body)


def test_a_run_seen_ending_here_is_not_adopted_again_from_a_watch_that_lags() -> None:
    """Its end read by a GET while the watch cache still shows the Job running: the next slot
    of a Forbid task is not skipped for it."""

    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        task = job_task(concurrencyPolicy="Forbid")
        first = d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        cluster.watch_delivers = False  # the watch stalls, with the Job running in the cache
        cluster.finish(NAME)
        await until(lambda: (store.get(first.id) or first).status is RunStatus.SUCCEEDED)
        await until(lambda: not d.active(KEY))
        second = d.fire(task, T0.replace(minute=1))
        assert second.status is RunStatus.RUNNING, second.message

    dispatch(body)


def test_shutdown_detaches_job_runs_at_once() -> None:
    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        fired = d.fire(job_task(), T0)
        await until(lambda: cluster.jobs)
        started = asyncio.get_running_loop().time()
        await d.shutdown(60)  # the grace is for local processes; a Job needs none
        assert asyncio.get_running_loop().time() - started < 5
        kept = store.get(fired.id)
        assert kept is not None
        assert kept.status is RunStatus.RUNNING
        assert kept.job is not None
        assert kept.job.uid
        assert cluster.jobs  # not deleted

    dispatch(body)


def test_outcome_detached_only_for_running() -> None:
    assert Outcome(RunStatus.RUNNING, None, "Shutdown", "", "").detached
    assert not Outcome(RunStatus.FAILED, None, "Shutdown", "", "").detached
