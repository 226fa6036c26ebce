"""Kubernetes 1.31+ decides a Job's outcome before its pods are gone: ``SuccessCriteriaMet`` or
``FailureTarget`` (status True) come first, ``Complete``/``Failed`` only once every pod has
terminated, which may take their ``terminationGracePeriodSeconds``. A decided Job is not late
for the ``timeoutSeconds`` backstop until that grace is over too, and a decided Job that is
deleted (by the backstop, or by anyone) is recorded by its decided outcome: the backstop
recorded a succeeded Job ``timedOut``/``DeadlineExceeded``, and had it retried. On a fake
wall clock, with the in-memory cluster (``twin.FakeCluster``, whose Jobs are created at T0)."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest

from reconciler.core.jobs import decided, finished, outcome_of, termination_grace
from reconciler.core.runs import RunStatus
from reconciler.runner.job import JobRunner
from tests.jobs.test_job_deadline import MARGIN, TIMEOUT, Deletes, reads, runner_at
from tests.jobs.test_job_runner import NAME, T0, job_task, play, record, until
from tests.jobs.twin import FakeCluster

GRACE = 30.0  # the API server's default: the test's pod template does not say
TARGETS = {"SuccessCriteriaMet": "SuccessPolicy", "FailureTarget": "BackoffLimitExceeded"}


def condition(kind: str, reason: str, status: str = "True") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": f"{kind}: {reason}"}


def decide(cluster: FakeCluster, name: str, kind: str, reason: str | None = None) -> None:
    """What the Job controller writes first: the target condition, pods still terminating."""
    job = copy.deepcopy(cluster.jobs[name])
    conditions = [condition(kind, reason or TARGETS[kind])]
    job["status"] = {"startTime": "2026-11-30T12:00:01Z", "active": 1, "conditions": conditions}
    cluster.add(job)  # the same uid: an update


# -- the pure part -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], None),
        ([condition("SuccessCriteriaMet", "SuccessPolicy")], ("Complete", "SuccessPolicy")),
        ([condition("FailureTarget", "DeadlineExceeded")], ("Failed", "DeadlineExceeded")),
        ([condition("FailureTarget", "BackoffLimitExceeded", "False")], None),
        (
            [
                condition("FailureTarget", "PodFailurePolicy"),
                condition("Failed", "PodFailurePolicy"),
            ],
            ("Failed", "PodFailurePolicy"),
        ),
    ],
)
def test_decided_reads_the_target_conditions(
    conditions: list[dict[str, Any]], expected: tuple[str, str] | None
) -> None:
    job = {"status": {"conditions": conditions}}
    said = decided(job)
    assert (said[:2] if said else None) == expected
    assert finished(job) is None or said == finished(job)  # the terminal one, when there


def test_a_decided_job_has_an_outcome() -> None:
    for reason, status in [
        ("DeadlineExceeded", RunStatus.TIMED_OUT),
        ("BackoffLimitExceeded", RunStatus.FAILED),
    ]:
        target = {"status": {"conditions": [condition("FailureTarget", reason)]}}
        ended = outcome_of(target, None, main="main")
        assert (ended.status, ended.reason) == (status, reason)
    success = {"status": {"conditions": [condition("SuccessCriteriaMet", "SuccessPolicy")]}}
    assert outcome_of(success, None, main="main").status is RunStatus.SUCCEEDED


def test_termination_grace_is_the_templates_else_30_seconds() -> None:
    assert termination_grace({}) == GRACE
    pod = {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 5}}}}
    assert termination_grace(pod) == 5.0


# -- the backstop --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["SuccessCriteriaMet", "FailureTarget"])
def test_a_decided_job_is_given_its_pods_grace_before_the_backstop(kind: str) -> None:
    async def main() -> None:
        cluster = Deletes()
        now = [T0]
        runner = runner_at(cluster, now)
        running = asyncio.ensure_future(
            runner.attempt(job_task(timeoutSeconds=TIMEOUT), record()).run()
        )
        await until(lambda: NAME in cluster.jobs)
        decide(cluster, NAME, kind)
        # Past the timeout and the margin, within the grace: its pods are terminating.
        now[0] = T0 + timedelta(seconds=TIMEOUT + MARGIN + GRACE - 1)
        seen = reads(cluster)
        await until(lambda: reads(cluster) >= seen + 3)  # three verifications later
        assert not running.done()
        assert cluster.deleted == []
        ends = "Complete" if kind == "SuccessCriteriaMet" else "Failed"
        cluster.finish(NAME, ends, None if ends == "Complete" else "BackoffLimitExceeded")
        outcome = await asyncio.wait_for(running, 5)
        wanted = RunStatus.SUCCEEDED if ends == "Complete" else RunStatus.FAILED
        assert outcome.status is wanted
        assert cluster.deleted == []

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kind", "reason", "status"),
    [
        ("SuccessCriteriaMet", "SuccessPolicy", RunStatus.SUCCEEDED),
        ("FailureTarget", "BackoffLimitExceeded", RunStatus.FAILED),
        ("FailureTarget", "DeadlineExceeded", RunStatus.TIMED_OUT),
    ],
)
def test_a_decided_job_whose_pods_never_go_is_deleted_and_recorded_as_decided(
    kind: str, reason: str, status: RunStatus
) -> None:
    async def main() -> None:
        cluster = Deletes()
        now = [T0]
        runner = runner_at(cluster, now)
        running = asyncio.ensure_future(
            runner.attempt(job_task(timeoutSeconds=TIMEOUT), record()).run()
        )
        await until(lambda: NAME in cluster.jobs)
        decide(cluster, NAME, kind, reason)
        now[0] = T0 + timedelta(seconds=TIMEOUT + MARGIN + GRACE)
        outcome = await asyncio.wait_for(running, 5)
        assert (outcome.status, outcome.reason) == (
            status,
            None if status is RunStatus.SUCCEEDED else reason,
        )
        assert "crontask deleted it" in outcome.message
        assert "had not all terminated" in outcome.message
        assert cluster.deleted == [(NAME, "uid-1")]
        assert outcome.job is not None
        assert outcome.job.uid == "uid-1"

    asyncio.run(main())


# -- a decided Job deleted before its terminal condition ------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [("SuccessCriteriaMet", RunStatus.SUCCEEDED), ("FailureTarget", RunStatus.FAILED)],
)
def test_a_decided_job_deleted_before_it_finished_is_recorded_as_decided(
    kind: str, status: RunStatus
) -> None:
    """Deleted by someone (or by a TTL on the decision) while its pods terminated: the
    outcome is known, not ``JobDeleted``."""

    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        decide(cluster, NAME, kind)
        seen = cluster.calls.count(("get", NAME))
        await until(lambda: cluster.calls.count(("get", NAME)) > seen)  # read decided
        cluster.vanish(NAME)
        outcome = await asyncio.wait_for(running, 5)
        assert outcome.status is status
        assert outcome.reason != "JobDeleted"

    play(body)
