"""A run resumed after a restart follows the Job its record names by uid when nothing controls
that Job now (its CronTask was deleted with ``--cascade=orphan`` and applied again: a new uid,
and a Job without a controller), not one a CronTask still controls, and tells a Job that is
there but not its own from one that is gone. With an in-memory cluster (``twin.FakeCluster``)."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.core.jobs import job_manifest
from reconciler.core.runs import JobDetails, RunStatus
from reconciler.core.status import ObjectRef
from reconciler.runner.job import JobRunner
from tests.jobs.test_job_runner import NAME, job_task, record
from tests.jobs.twin import FakeCluster

OLD = ObjectRef("default", "job", "old-uid", "1", 1)
NEW = ObjectRef("default", "job", "new-uid", "1", 1)


def left_job(cluster: FakeCluster, owner: ObjectRef | None) -> dict[str, Any]:
    """The Job the first attempt of the run at T0 made, controlled by ``owner`` now."""
    body = job_manifest(job_task(), record(), namespace="default", name=NAME, env={}, owner=owner)
    return cluster.add(body)


def resume(recorded_uid: str | None, owner: ObjectRef | None) -> tuple[Any, FakeCluster]:
    async def main() -> tuple[Any, FakeCluster]:
        cluster = FakeCluster()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, owner=lambda key: NEW)
        job = left_job(cluster, owner)
        cluster.finish(NAME, exit_code=0, log="done\n")
        uid = job["metadata"]["uid"] if recorded_uid is None else recorded_uid
        where = JobDetails("default", NAME, uid)
        return await runner.resume(record(job=where)).run(), cluster

    return asyncio.run(main())


def test_the_recorded_job_is_followed_when_nothing_controls_it_now() -> None:
    outcome, _ = resume(None, None)
    assert (outcome.status, outcome.output) == (RunStatus.SUCCEEDED, "done\n")


def test_the_recorded_job_a_crontask_still_controls_is_left_alone() -> None:
    """A CronTask not in force (it lost its key to a task from another source, or it is being
    deleted and the garbage collector has not yet dropped its reference) still controls the
    Job: it is that CronTask's, never followed, replaced or deleted here (``run_in``)."""
    outcome, cluster = resume(None, OLD)
    assert (outcome.status, outcome.reason) == (RunStatus.INTERRUPTED, "JobGone")
    # Its uid is the recorded one: the message says what keeps it from this run, not that
    # it is "not this run's" (uid X; recorded: X).
    assert "is controlled by CronTask job (uid old-uid)" in outcome.message
    assert "not this run's" not in outcome.message
    assert not [c for c in cluster.calls if c[0] == "delete"]
    assert NAME in cluster.jobs


def test_a_job_of_that_name_with_another_uid_is_there_not_gone() -> None:
    outcome, cluster = resume("another-uid", None)
    assert (outcome.status, outcome.reason) == (RunStatus.INTERRUPTED, "JobGone")
    assert outcome.message.startswith(f"Job {NAME} in default exists but is not this run's")
    assert "another-uid" in outcome.message
    assert not [c for c in cluster.calls if c[0] == "delete"]  # left alone
