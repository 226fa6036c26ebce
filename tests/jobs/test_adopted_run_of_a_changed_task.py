"""A Job run adopted after a restart whose task changed while crontask was down (its image, its
command, its retry: any field but ``suspend``): a failed attempt is not retried with the new
definition, as a change seen while the run goes on cancels its retry (``TaskChanged``). The Job
itself is followed to its end; its retry is recorded ``skipped``, reason ``TaskChanged``. A
change of ``suspend`` alone is no change to the runs going, here as there: they retry. The
definition a Job was made from is on the Job (``crontask.dev/definition`` annotation); a Job
without it (made by an older crontask) is retried as before."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.jobs import job_manifest
from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger
from reconciler.runner.job_create import made_from
from reconciler.store import MemoryRunStore
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, trigger, write_task
from tests.jobs.test_job_runner import EARLIER, OLD_NAME, dispatch, job_task, record, until
from tests.jobs.twin import FakeCluster

RETRY = {"retry": {"limit": 1, "backoffSeconds": 0}}


def made_by_then(store: MemoryRunStore, cluster: FakeCluster, then: Definition) -> RunRecord:
    """A Job run an earlier crontask started from the definition ``then`` and never saw end."""
    old = record(at=EARLIER, owner="h:1:old", job=JobDetails("default", OLD_NAME))
    store.claim(old)
    body = job_manifest(then, old, namespace="default", name=OLD_NAME, env={})
    cluster.add(made_from(body, then))
    return old


def image(name: str, **spec: object) -> Definition:
    pod = {"containers": [{"name": "main", "image": name}]}
    return job_task(job={"spec": {"template": {"spec": pod}}}, **RETRY, **spec)


@pytest.mark.parametrize(
    ("now", "retried"),
    [
        (image("busybox:2"), False),  # another image
        (image("busybox", timeoutSeconds=60), False),  # another field than the Job's
        (image("busybox", suspend=True), True),  # suspended only: its runs retry
        (image("busybox"), True),  # the same
    ],
    ids=["image", "timeout", "suspend", "same"],
)
def test_the_retry_of_an_adopted_run_holds_to_the_definition_its_job_was_made_from(
    now: Definition, retried: bool
) -> None:
    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        old = made_by_then(store, cluster, image("busybox"))
        assert d.adopt(now, old)
        cluster.finish(OLD_NAME, "Failed", exit_code=1, log="nope\n")
        if retried:
            await until(lambda: f"{OLD_NAME}-2" in cluster.jobs)
            return
        await until(lambda: len(store.attempts(old.id)) == 2)
        await until(lambda: store.attempts(old.id)[1].status.finished)
        first, retry = store.attempts(old.id)
        assert (first.status, first.output) == (RunStatus.FAILED, "nope\n")
        assert (retry.status, retry.reason, retry.trigger) == (
            RunStatus.SKIPPED,
            "TaskChanged",
            Trigger.RETRY,
        )
        assert f"{OLD_NAME}-2" not in cluster.jobs

    dispatch(body)


def test_a_job_that_does_not_say_its_definition_is_retried_as_before() -> None:
    """Made by an older crontask: nothing tells a change, so nothing cancels its retry."""

    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        old = record(at=EARLIER, owner="h:1:old", job=JobDetails("default", OLD_NAME))
        store.claim(old)
        then = image("busybox")
        cluster.add(job_manifest(then, old, namespace="default", name=OLD_NAME, env={}))
        assert d.adopt(image("busybox:2"), old)
        cluster.finish(OLD_NAME, "Failed", exit_code=1)
        await until(lambda: f"{OLD_NAME}-2" in cluster.jobs)

    dispatch(body)


def test_a_retry_made_here_says_its_definition() -> None:
    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        old = made_by_then(store, cluster, image("busybox"))
        assert d.adopt(image("busybox"), old)
        cluster.finish(OLD_NAME, "Failed", exit_code=1)
        await until(lambda: f"{OLD_NAME}-2" in cluster.jobs)
        notes = cluster.jobs[OLD_NAME]["metadata"]["annotations"]
        again = cluster.jobs[f"{OLD_NAME}-2"]["metadata"]["annotations"]
        assert again["crontask.dev/definition-hash"] == notes["crontask.dev/definition-hash"]

    dispatch(body)


def retried(instance: Crontask, run: str) -> tuple[RunRecord, RunRecord]:
    """The adopted run's first attempt and its retry, once that is recorded ended."""

    def ended() -> list[RunRecord]:
        found = sorted((r for r in instance.runs("default/long") if r.id == run), key=attempt)
        return found if len(found) == 2 and found[1].status.finished else []

    first, retry = wait_for("the adopted run's retry recorded", ended)
    return first, retry


def attempt(record: RunRecord) -> int:
    return record.attempt


def left_running(instance: Crontask) -> RunRecord:
    """A manual run whose Job goes on, crontask stopped."""
    trigger(instance, "default/long")
    (running,) = wait_for(
        "the Job's uid in the running record",
        lambda: [
            r
            for r in instance.runs("default/long")
            if r.status is RunStatus.RUNNING and r.job is not None and r.job.uid
        ],
    )
    assert instance.stop(signal.SIGTERM) == 0  # detaches: the Job runs on
    return running


@pytest.mark.slow
def test_a_failed_job_is_not_retried_with_the_definition_changed_while_crontask_was_down(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    gate = Gate(tmp_path)
    instance = crontask()
    write_task(instance.tasks, "long", gate.wait("echo old; exit 1"), **RETRY)
    running = left_running(instance)
    write_task(instance.tasks, "long", "echo new", **RETRY)  # while crontask is down
    instance.start()
    instance.wait_log("run adopted")
    gate.open()
    first, retry = retried(instance, running.id)
    assert (first.status, first.output) == (RunStatus.FAILED, "old\n")
    assert (retry.status, retry.reason) == (RunStatus.SKIPPED, "TaskChanged"), retry.message


@pytest.mark.slow
def test_a_failed_job_whose_task_was_only_suspended_meanwhile_is_retried(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    gate = Gate(tmp_path)
    instance = crontask()
    write_task(instance.tasks, "long", gate.wait("echo old; exit 1"), **RETRY)
    running = left_running(instance)
    write_task(instance.tasks, "long", gate.wait("echo old; exit 1"), suspend=True, **RETRY)
    instance.start()
    instance.wait_log("run adopted")
    gate.open()
    first, retry = retried(instance, running.id)
    assert (first.status, first.output) == (RunStatus.FAILED, "old\n")
    assert (retry.status, retry.output) == (RunStatus.FAILED, "old\n"), retry.message
