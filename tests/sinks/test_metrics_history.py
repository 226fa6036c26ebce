"""A task that comes into the metrics' snapshot starts from its last outcomes in the run
history, so that the alerts on them survive a restart or a move to another replica."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

import pytest

from reconciler.core.runs import LastOutcomes, RunRecord, RunStatus
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.store import MemoryRunStore, StoreUnavailable
from tests.helpers import definition
from tests.sinks._history import PlainReads
from tests.sinks.test_metrics import NEXT, T0, attempt, run, samples, value
from tests.store._records import T0 as HISTORY_T0
from tests.store._records import rec

SUCCESS = "crontask_task_last_success_timestamp_seconds"
FAILURE = "crontask_task_last_failure_timestamp_seconds"
DURATION = "crontask_task_last_run_duration_seconds"


class Asked(PlainReads):
    """The run store as the metrics' history, noting which keys each lookup asked for."""

    def __init__(self, store: MemoryRunStore, failures: int = 0) -> None:
        self.store = store
        self.calls: list[set[str]] = []
        self.failures = failures

    def last_outcomes(self, tasks: Collection[str]) -> dict[str, LastOutcomes]:
        self.calls.append(set(tasks))
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("database is locked")
        return self.store.last_outcomes(tasks)

    def running(self, task: str | None = None) -> list[RunRecord]:
        return self.store.running(task)


def at(minutes: int, seconds: int = 5) -> datetime:
    return HISTORY_T0 + timedelta(minutes=minutes, seconds=seconds)


def ended(record_at: int, took: int = 5) -> float:
    """When ``rec(at=record_at)`` ended (its finished_at), as a timestamp."""
    return at(record_at, took).timestamp()


@pytest.fixture
def store() -> MemoryRunStore:
    history = MemoryRunStore()
    history.save_many(
        [
            rec("default/a", at=1),
            rec("default/a", at=2, status=RunStatus.FAILED, exit_code=1, finished_at=at(2, 45)),
            rec("default/b", at=3, status=RunStatus.TIMED_OUT, exit_code=None),
            rec("default/elsewhere", at=4),  # a task this process does not hold
        ]
    )
    return history


def test_the_first_scrape_shows_the_last_outcomes_in_the_history(store: MemoryRunStore) -> None:
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    tasks.set(definition("b"), NEXT, 60.0)
    found = samples(Metrics(tasks, history=store))
    a, b = frozenset({("task", "default/a")}), frozenset({("task", "default/b")})
    assert found[(SUCCESS, a)] == ended(1)
    assert found[(FAILURE, a)] == ended(2, 45)
    assert found[(FAILURE, b)] == ended(3)
    # The attempt that ended last (started a second after its slot): what the alert on a run
    # in progress compares with, so that a task whose runs are long by design is not "hung"
    # after every restart until one of them ends.
    assert found[(DURATION, a)] == 44.0
    assert found[(DURATION, b)] == 4.0
    assert (SUCCESS, b) not in found  # never succeeded: no series, rather than 1970
    # The counters are this process's: they start from 0.
    assert found[("crontask_runs_total", a | {("status", "succeeded")})] == 0
    assert not any(dict(labels).get("task") == "default/elsewhere" for _, labels in found)


def test_runs_seen_here_and_the_history_give_the_later_of_each(store: MemoryRunStore) -> None:
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    m = Metrics(tasks, history=store)
    # Seen before the first scrape, and newer than the history: it stays.
    newer = run(m, "default/a", RunStatus.FAILED, at=T0 + timedelta(minutes=30))
    assert newer.finished_at is not None
    assert value(m, FAILURE, task="default/a") == newer.finished_at.timestamp()
    assert value(m, SUCCESS, task="default/a") == ended(1)
    # The duration seen here (2 s) is newer than the history's (44 s).
    assert value(m, DURATION, task="default/a") == 2.0
    # An older end seen afterwards does not take the timestamp back.
    run(m, "default/a", RunStatus.SUCCEEDED, at=HISTORY_T0 - timedelta(hours=1))
    assert value(m, SUCCESS, task="default/a") == ended(1)
    assert value(m, "crontask_runs_total", task="default/a", status="succeeded") == 1


def test_each_task_is_looked_up_when_it_comes_and_again_when_it_comes_back(
    store: MemoryRunStore,
) -> None:
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    asked = Asked(store)
    m = Metrics(tasks, history=asked)
    samples(m)
    samples(m)
    assert asked.calls == [{"default/a"}]
    tasks.set(definition("b"), NEXT, 60.0)
    samples(m)
    assert asked.calls[1:] == [{"default/b"}]
    # Moved to another replica, which ran it, and back: looked up again, and newer.
    tasks.remove("default/a")
    samples(m)
    store.save_many([rec("default/a", at=50)])
    tasks.set(definition("a"), NEXT, 60.0)
    assert value(m, SUCCESS, task="default/a") == ended(50)
    assert asked.calls[2:] == [{"default/a"}]


def test_a_history_that_cannot_be_read_is_asked_again_and_the_scrape_goes_on(
    store: MemoryRunStore, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    asked = Asked(store, failures=1)
    m = Metrics(tasks, history=asked)
    with caplog.at_level(logging.WARNING, logger="crontask.metrics"):
        assert value(m, SUCCESS, task="default/a") is None
    assert "cannot read the last outcomes" in caplog.text
    assert value(m, "crontask_running_runs", task="default/a") == 0
    assert value(m, SUCCESS, task="default/a") == ended(1)
    assert asked.calls == [{"default/a"}, {"default/a"}]


def test_a_run_in_progress_keeps_counting_when_its_task_is_looked_up(
    store: MemoryRunStore,
) -> None:
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    m = Metrics(tasks, history=store)
    started, _ = attempt("default/a", RunStatus.SUCCEEDED, at=T0 + timedelta(hours=1))
    m.on_run(started)
    assert value(m, "crontask_running_runs", task="default/a") == 1
    assert value(m, SUCCESS, task="default/a") == ended(1)
