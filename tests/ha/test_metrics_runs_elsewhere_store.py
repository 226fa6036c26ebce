"""The owner's checks count the runs not of the schedule that other replicas ran of its tasks,
read from a real SQLite run store (``sinks.metrics_elsewhere``, ``controller.sweep``): each
attempt once, though the checks' windows overlap; a long one whose slot is older than the
window, and a retried one's attempts, from what the last check saw in progress; not the
owner's own (heard), not those that ended before the owner first read the task (a restart: the
crontask before counted them), and nothing without replicas.

The processes are ``Metrics`` on one store, as each replica's; ``tests/ha/
test_metrics_runs_elsewhere.py`` runs them as real replicas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.controller.sweep import unscheduled
from reconciler.core.runs import RunRecord, RunStatus, Trigger, manual_slot, run_id
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.sinks.metrics_runs import RECHECK_SECONDS
from reconciler.store import open_store, sqlite_url
from reconciler.store.base import RunStore
from tests.helpers import definition
from tests.sinks.test_metrics import NEXT, value
from tests.sinks.test_metrics_running import Clock, inline

A = "default/a"
TOTAL = "crontask_runs_total"
ME, OTHER = "h:1:owner", "h:2:other"


def owner(store: RunStore, clock: Clock, *, replicas: bool = True) -> Metrics:
    """The owner of ``A``, read once (its seed), and one check done."""
    tasks = MemoryTasks()
    metrics = Metrics(
        tasks,
        history=store,
        owner=ME,
        clock=clock,
        spawn=inline,
        seed_spawn=inline,
        unscheduled=lambda since: unscheduled(store, since),
    )
    if replicas:
        metrics.replicas(3, False)  # its first share: the checks read others' manual runs
    tasks.set(definition("a"), NEXT, 60.0)
    assert counts(metrics) == (0, 0, 0)
    return metrics


def counts(metrics: Metrics) -> tuple[float, ...]:
    """Succeeded, failed, skipped (a skip's series shows from the first)."""
    return tuple(
        value(metrics, TOTAL, task=A, status=s) or 0.0 for s in ("succeeded", "failed", "skipped")
    )


def check(metrics: Metrics, clock: Clock) -> tuple[float, ...]:
    clock.advance(RECHECK_SECONDS)
    counts(metrics)  # the scrape that starts the check (inline)
    return counts(metrics)


def manual(
    at: datetime, status: RunStatus, who: str = OTHER, attempt: int = 1, took: float = 1.0
) -> RunRecord:
    slot = manual_slot(at)
    return RunRecord(
        id=run_id(A, slot),
        task=A,
        scheduled_at=slot,
        trigger=Trigger.MANUAL if attempt == 1 else Trigger.RETRY,
        status=status,
        attempt=attempt,
        started_at=slot,
        finished_at=None if status is RunStatus.RUNNING else slot + timedelta(seconds=took),
        owner=who,
    )


def test_manual_runs_and_skips_elsewhere_count_once_and_the_owner_s_own_are_heard(
    tmp_path: Path,
) -> None:
    store, clock = open_store(sqlite_url(tmp_path / "runs.db")), Clock()
    metrics = owner(store, clock)
    now = datetime.now(UTC)
    store.save_many(
        [
            manual(now, RunStatus.SUCCEEDED),
            manual(now + timedelta(seconds=1), RunStatus.FAILED),
            manual(now + timedelta(seconds=2), RunStatus.SKIPPED, took=0),
            manual(now + timedelta(seconds=3), RunStatus.SUCCEEDED, who=ME),  # heard, not read
        ]
    )
    assert check(metrics, clock) == (1, 1, 1)
    assert check(metrics, clock) == (1, 1, 1)  # the next window holds them again
    store.save_many([manual(now + timedelta(seconds=4), RunStatus.SUCCEEDED)])
    assert check(metrics, clock) == (2, 1, 1)
    assert check(metrics, clock) == (2, 1, 1)
    store.close()


def test_a_long_run_and_a_retried_one_count_from_what_the_last_check_saw_going(
    tmp_path: Path,
) -> None:
    store, clock = open_store(sqlite_url(tmp_path / "runs.db")), Clock()
    metrics = owner(store, clock)
    long_ago = datetime.now(UTC) - timedelta(hours=1)  # its slot: long before any window
    long_run = manual(long_ago, RunStatus.RUNNING)
    retried = manual(long_ago + timedelta(seconds=1), RunStatus.RUNNING)
    store.claim(long_run)
    store.claim(retried)
    assert check(metrics, clock) == (0, 0, 0)  # seen going, elsewhere
    now = datetime.now(UTC)
    store.complete(long_run.finish(RunStatus.SUCCEEDED, finished_at=now))
    store.complete(retried.finish(RunStatus.FAILED, finished_at=now))
    retry = retry_of(retried, now)
    store.claim(retry)
    assert check(metrics, clock) == (1, 1, 0)
    store.complete(retry.finish(RunStatus.SUCCEEDED, finished_at=datetime.now(UTC)))
    assert check(metrics, clock) == (2, 1, 0)
    assert check(metrics, clock) == (2, 1, 0)
    store.close()


def retry_of(record: RunRecord, at: datetime) -> RunRecord:
    """The retry of ``record``: its next attempt, going from ``at``."""
    return RunRecord(
        id=record.id,
        task=record.task,
        scheduled_at=record.scheduled_at,
        trigger=Trigger.RETRY,
        status=RunStatus.RUNNING,
        attempt=record.attempt + 1,
        started_at=at,
        owner=record.owner,
    )


def test_a_restarted_owner_counts_only_the_ends_after_it_read_the_task(tmp_path: Path) -> None:
    store, clock = open_store(sqlite_url(tmp_path / "runs.db")), Clock()
    before = owner(store, clock)
    now = datetime.now(UTC)  # the run ends now: after this owner read the task, before the next
    store.save_many([manual(now - timedelta(seconds=1), RunStatus.SUCCEEDED)])
    assert check(before, clock) == (1, 0, 0)
    after = owner(store, clock)  # the crontask after it, reading the same window
    assert check(after, clock) == (0, 0, 0)
    store.save_many([manual(datetime.now(UTC), RunStatus.SUCCEEDED)])
    assert check(after, clock) == (1, 0, 0)
    store.close()


def test_without_replicas_nothing_is_read(tmp_path: Path) -> None:
    store, clock = open_store(sqlite_url(tmp_path / "runs.db")), Clock()
    metrics = owner(store, clock, replicas=False)
    store.save_many([manual(datetime.now(UTC), RunStatus.SUCCEEDED)])
    assert check(metrics, clock) == (0, 0, 0)
    store.close()
