"""``crontask_run_start_delay_seconds`` under ``Replace``: a run whose slot came while the run it
replaces was still stopping (TERM, then KILL after ``--kill-grace``: 10 s by default) starts
once that run has ended. That wait is the task's policy, not crontask's lag: the delay is
counted from the later of its slot and that end, so that ``CrontaskStartDelayHigh`` ("crontask
is overloaded") does not fire for a task whose command takes its time to stop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.sinks.metrics import MemoryTasks, Metrics
from tests.helpers import definition

SLOT = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
KEY = "default/stubborn"


def running(at: datetime, started: datetime, task: str = KEY) -> RunRecord:
    return RunRecord(
        id=run_id(task, at),
        task=task,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        started_at=started,
    )


def ended(record: RunRecord, at: datetime, reason: str | None) -> RunRecord:
    status = RunStatus.FAILED if reason else RunStatus.SUCCEEDED
    return RunRecord(
        id=record.id,
        task=record.task,
        scheduled_at=record.scheduled_at,
        trigger=record.trigger,
        status=status,
        started_at=record.started_at,
        finished_at=at,
        reason=reason,
    )


def delays(metrics: Metrics) -> tuple[float, float]:
    """The start delay histogram's count and sum."""
    found = {
        s.name: s.value
        for family in text_string_to_metric_families(metrics.render()[0].decode())
        for s in family.samples
        if s.name.startswith("crontask_run_start_delay_seconds_")
    }
    return found["crontask_run_start_delay_seconds_count"], found[
        "crontask_run_start_delay_seconds_sum"
    ]


def metrics() -> Metrics:
    tasks = MemoryTasks()
    tasks.set(definition("stubborn"), SLOT + 60 * SECOND, 15.0)
    tasks.set(definition("other"), SLOT + 60 * SECOND, 15.0)
    return Metrics(tasks)


def test_the_wait_for_a_replaced_run_to_stop_is_no_start_delay() -> None:
    m = metrics()
    first = running(SLOT, SLOT)
    m.on_run(first)
    # The slot of 15 s replaces it; it stops 8 s later (KILL after the grace period).
    m.on_run(ended(first, SLOT + 23 * SECOND, "Replaced"))
    m.on_run(running(SLOT + 15 * SECOND, SLOT + 23.5 * SECOND))
    count, total = delays(m)
    assert count == 2
    assert total == 0.5


def test_a_late_start_after_a_replaced_run_still_counts_from_its_slot() -> None:
    """The replaced run ended before the slot: the whole delay is crontask's."""
    m = metrics()
    first = running(SLOT, SLOT)
    m.on_run(first)
    m.on_run(ended(first, SLOT + 10 * SECOND, "Replaced"))  # replaced by a manual run, say
    m.on_run(running(SLOT + 15 * SECOND, SLOT + 21 * SECOND))
    assert delays(m) == (2, 6.0)


def test_another_tasks_replaced_run_does_not_shorten_a_delay() -> None:
    m = metrics()
    first = running(SLOT, SLOT, task="default/other")
    m.on_run(first)
    m.on_run(ended(first, SLOT + 23 * SECOND, "Replaced"))
    m.on_run(running(SLOT + 15 * SECOND, SLOT + 23.5 * SECOND))
    assert delays(m) == (2, 8.5)


def test_a_run_that_ended_otherwise_does_not_shorten_a_delay() -> None:
    m = metrics()
    first = running(SLOT, SLOT)
    m.on_run(first)
    m.on_run(ended(first, SLOT + 23 * SECOND, None))
    m.on_run(running(SLOT + 15 * SECOND, SLOT + 23.5 * SECOND))
    assert delays(m) == (2, 8.5)
