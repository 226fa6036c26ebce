"""Every replica, and both the task list and one task's page, show the same last run: the
newest record by the store's order (slot, run id, attempt).

The owner of a task listed the run that most recently *ended* on it (the last event won), a
replica that does not own it the store's newest: after a ``Forbid`` run that ended behind the
slots it caused to be skipped, the owner showed ``succeeded`` (its slot) and the other replica
``skipped ConcurrencyForbid`` (a later slot). And on one process, the list showed only the runs
that ended while one task's page (read from the store) showed a run still going.

Two replicas in this process share one SQLite file, as two processes would; the owner hears
the records in the order its dispatcher tells them (``Service._remember``), after each is
stored (the dispatcher's listeners hear a record once written)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from tests.api.test_task_list_replicas import (  # noqa: F401 (the fixtures)
    Replica,
    replicas,
    split,
    tasks,
)

SLOT = datetime(2026, 12, 6, 9, 31, 15, tzinfo=UTC)


def record(key: str, at: datetime, status: RunStatus, reason: str | None = None) -> RunRecord:
    return RunRecord(
        id=run_id(key, at),
        task=key,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=status,
        started_at=at,
        finished_at=None if status is RunStatus.RUNNING else at + timedelta(seconds=1),
        reason=reason,
        owner="h:1:replica-b",
    )


def told(owner: Replica, *records: RunRecord) -> None:
    """As the owner's dispatcher makes them: each stored, then told to the listeners."""
    for r in records:
        owner.store.save_many([r])
        owner.service._remember(r)


def shown(replica: Replica, key: str) -> tuple[str, str]:
    listed, one = replica.listed()[key], replica.one(key)
    assert (listed["id"], listed["status"]) == (one["id"], one["status"]), replica.me
    return listed["id"], listed["status"]


def test_a_forbid_run_that_ends_behind_its_skips_is_not_the_last_on_any_replica(
    replicas: tuple[Replica, Replica],  # noqa: F811 (the fixture of test_task_list_replicas)
) -> None:
    a, b = replicas
    _, key = split(a, b)  # b owns it
    long = record(key, SLOT, RunStatus.RUNNING)
    skips = [
        record(key, SLOT + timedelta(seconds=s), RunStatus.SKIPPED, reason="ConcurrencyForbid")
        for s in (5, 10)
    ]
    ended = record(key, SLOT, RunStatus.SUCCEEDED)
    told(b, long, *skips, ended)
    newest = (skips[-1].id, RunStatus.SKIPPED.value)
    assert shown(b, key) == newest  # the owner (was: the Forbid run, the last to end here)
    assert shown(a, key) == newest


def test_the_list_shows_a_run_still_going_as_one_tasks_page_does(
    replicas: tuple[Replica, Replica],  # noqa: F811 (the fixture of test_task_list_replicas)
) -> None:
    a, b = replicas
    _, key = split(a, b)
    before = record(key, SLOT, RunStatus.SUCCEEDED)
    going = record(key, SLOT + timedelta(minutes=1), RunStatus.RUNNING)
    told(b, before, going)
    for replica in (a, b):
        assert shown(replica, key) == (going.id, RunStatus.RUNNING.value)
    done = record(key, going.scheduled_at, RunStatus.FAILED)
    told(b, done)
    for replica in (a, b):
        assert shown(replica, key) == (done.id, RunStatus.FAILED.value)
    # A rewrite of the running attempt told late (a Job's name) never takes its end's place.
    b.service._remember(going)
    assert shown(b, key) == (done.id, RunStatus.FAILED.value)
