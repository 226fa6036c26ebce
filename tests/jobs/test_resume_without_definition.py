"""A run resumed while no definition is in force for its task (its CronTask invalid now, or not
listed yet at the start) follows the Job its record names by uid when that Job's controller is
the task's own CronTask (same namespace and name): nothing else can claim it. A Job controlled
by a CronTask of another key, or by the task's CronTask while a definition from another source
holds the key, is left alone: never followed or deleted. With an in-memory cluster
(``twin.FakeCluster``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from reconciler.core.jobs import job_manifest
from reconciler.core.runs import JobDetails, RunStatus
from reconciler.core.status import ObjectRef
from reconciler.runner.base import Outcome
from reconciler.runner.job import JobRunner
from tests.jobs.test_job_runner import NAME, job_task, record
from tests.jobs.twin import FakeCluster

OWN = ObjectRef("default", "job", "own-uid", "1", 1)  # the task default/job's CronTask
OTHER = ObjectRef("default", "other", "other-uid", "1", 1)  # another key's CronTask


def resume(
    controller: ObjectRef, prepare: Callable[[JobRunner], object] = lambda runner: None, **kw: Any
) -> tuple[Outcome, FakeCluster]:
    """Resume the run whose Job (recorded by uid) ``controller`` controls, with no CronTask in
    force for the task (``owner`` gives None) and the Job finished meanwhile."""

    async def main() -> tuple[Outcome, FakeCluster]:
        cluster = FakeCluster()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, **kw)
        prepare(runner)
        body = job_manifest(
            job_task(), record(), namespace="default", name=NAME, env={}, owner=controller
        )
        job = cluster.add(body)
        cluster.finish(NAME, exit_code=0, log="done\n")
        where = JobDetails("default", NAME, job["metadata"]["uid"])
        return await runner.resume(record(job=where)).run(), cluster

    return asyncio.run(main())


def test_the_tasks_own_crontask_controls_it_and_nothing_is_in_force() -> None:
    outcome, _ = resume(OWN)
    assert (outcome.status, outcome.reason, outcome.output) == (
        RunStatus.SUCCEEDED,
        None,
        "done\n",
    )


def test_told_that_nothing_is_in_force() -> None:
    outcome, _ = resume(OWN, claimed=lambda key: False)
    assert outcome.status is RunStatus.SUCCEEDED


def left_alone(outcome: Outcome, cluster: FakeCluster, controller: ObjectRef) -> None:
    assert (outcome.status, outcome.reason) == (RunStatus.INTERRUPTED, "JobGone")
    assert f"is controlled by {controller.kind} {controller.name} (uid {controller.uid})" in (
        outcome.message
    )
    assert not [c for c in cluster.calls if c[0] == "delete"]
    assert NAME in cluster.jobs


def test_a_job_another_keys_crontask_controls_is_left_alone() -> None:
    outcome, cluster = resume(OTHER)
    left_alone(outcome, cluster, OTHER)


def test_a_key_another_source_holds_is_left_alone() -> None:
    """A folder task holds the key now (the CronTask lost it): the Job is that CronTask's."""
    outcome, cluster = resume(OWN, lambda runner: runner.place(job_task()))
    left_alone(outcome, cluster, OWN)


def test_a_key_a_definition_is_said_to_hold_is_left_alone() -> None:
    """``claimed`` says a definition holds it (any source; one that is no ``job`` task is
    never placed here)."""
    outcome, cluster = resume(OWN, claimed=lambda key: key == "default/job")
    left_alone(outcome, cluster, OWN)


def test_a_job_an_earlier_object_of_the_crontask_controls_is_left_alone() -> None:
    """The CronTask deleted (its Jobs left to the garbage collector) and applied again, invalid,
    while crontask was down: the Job's controller has the name but not the uid of the CronTask
    listed now. Followed, its deletion by the collector was a failed run (JobDeleted)."""
    again = ObjectRef("default", "job", "new-uid", "2", 1)
    outcome, cluster = resume(OWN, listed=lambda key: again if key == "default/job" else None)
    left_alone(outcome, cluster, OWN)


def test_a_job_the_crontask_listed_now_controls_is_followed() -> None:
    outcome, _ = resume(OWN, listed=lambda key: OWN if key == "default/job" else None)
    assert outcome.status is RunStatus.SUCCEEDED


def test_a_job_of_a_crontask_deleted_meanwhile_is_left_alone() -> None:
    """Deleted while crontask was down, not applied again: once the CronTasks are listed it is
    not there, and the garbage collector takes its Job (followed, that was a failed run)."""
    outcome, cluster = resume(OWN, listed=lambda key: False)
    left_alone(outcome, cluster, OWN)
