"""With replicas (``--ha``), a Job run going when its task moves: the new owner's job
housekeeping adopts it (``controller.jobs.adopt_runs``) and follows the Job, while the replica
that started it follows it too, so both dispatchers record the same end. It is told of once, by
the replica that adopted it; one that ended before anyone adopted it is told of where it ran.
The harness of ``test_notify_handover``."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger, run_id
from tests.notify.test_notify_handover import KEY, T0, Replica, by_run, move, replicas, two_replicas

JOB = JobDetails("default", "t-job-1")


def start_job(replica: Replica, slot: datetime) -> RunRecord:
    """``replica`` starts a scheduled run of the job task: its record names its Job from the
    start (``runner.job`` announces it before it creates the Job)."""
    record = RunRecord(
        id=run_id(KEY, slot),
        task=KEY,
        scheduled_at=slot,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        started_at=slot,
        owner=replica.name,
        job=JOB,
    )
    replica.store.claim(record)
    replica.notifier.on_run(record)
    return record


def test_a_job_run_adopted_by_the_new_owner_is_told_once_there() -> None:
    a, b, owners, desired, sent = two_replicas()
    after = T0 + timedelta(minutes=1)

    async def main() -> None:
        async with replicas(a, b):
            going = start_job(a, T0)
            move(owners, desired, a, b)
            adopted = b.store.take_over(going.id, going.attempt, "b")  # b's housekeeping
            assert adopted is not None
            # The Job fails: b's dispatcher records the end it followed, then a's does.
            final = b.end(adopted, RunStatus.FAILED)
            a.store.complete(dataclasses.replace(final, owner="a"))
            a.notifier.on_run(dataclasses.replace(final, owner="a"))
            await a.looked_at(1)
            await b.looked_at(1)
            b.end(b.start(after), RunStatus.SUCCEEDED)  # the new owner's next run
            await b.looked_at(2)

    asyncio.run(main())
    assert by_run(sent) == [
        ("b", "failed", run_id(KEY, T0), False),
        ("b", "recovered", run_id(KEY, after), False),
    ]


def test_a_job_run_that_ended_before_it_was_adopted_is_told_where_it_ran() -> None:
    """The new owner's housekeeping had not run yet: only the replica that started the run
    followed its Job, and it tells of its end (the run store still names it)."""
    a, b, owners, desired, sent = two_replicas()
    after = T0 + timedelta(minutes=1)

    async def main() -> None:
        async with replicas(a, b):
            going = start_job(a, T0)
            move(owners, desired, a, b)
            a.end(going, RunStatus.FAILED)
            await a.looked_at(1)
            b.end(b.start(after), RunStatus.SUCCEEDED)
            await b.looked_at(1)

    asyncio.run(main())
    assert by_run(sent) == [
        ("a", "failed", run_id(KEY, T0), False),
        ("b", "recovered", run_id(KEY, after), False),
    ]
