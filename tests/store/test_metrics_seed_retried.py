"""The last-failure timestamp read from the run history (the metrics' seed) agrees with what
the live process reports of a run that retries, on every store.

A failed attempt that the dispatcher retries has not ended its run: heard live, it is not the
task's last failure (``tests/sinks/test_metrics_retried_attempts.py``). The store holds it as
a plain failed attempt (it keeps nothing of the decision, and a run waiting for its retry has
no attempt ``running``), so a first scrape after the failure (after a start, or for a task
just added) read it back as the task's last failure, and ``CrontaskTaskFailing`` fired while
the run only waited for its retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.controller.active import TASK_CHANGED
from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import RetriedAttempt, RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions, Outcome
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.store import MemoryRunStore, RunStore
from tests.helpers import definition
from tests.sinks.test_metrics import value

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "default/job"
FAILED = Outcome(RunStatus.FAILED, 1, "NonZeroExit", "exit code 1", "")
LAST_FAILURE = "crontask_task_last_failure_timestamp_seconds"
LAST_SUCCESS = "crontask_task_last_success_timestamp_seconds"
OWNER = "h:1:x"


class Clock:
    """The dispatcher's clock, moved by the test: each attempt's end is its own instant."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> float:
        # Microseconds too: the store must give the instant back as it was heard.
        self.now = T0 + timedelta(seconds=seconds, microseconds=123_456)
        return self.now.timestamp()


Body = Callable[[Dispatcher, ScriptedAction, Clock, list[RunRecord]], Coroutine[Any, Any, None]]


def play(store: RunStore, job: Definition, metrics: Metrics, body: Body) -> None:
    """One crontask process on ``store``: a dispatcher whose run listener is ``metrics``; the
    body is handed the records heard, in order, heard after the metrics heard them."""

    async def main() -> None:
        action, clock = ScriptedAction(), Clock()
        d = Dispatcher(store, owner=OWNER, clock=clock, actions=Actions([action]))
        heard: list[RunRecord] = []
        d.subscribe(metrics.on_run)
        d.subscribe(heard.append)  # after the metrics: what it holds, they heard
        await body(d, action, clock, heard)
        for attempt in action.running():
            attempt.finish()
        await d.shutdown(0)

    asyncio.run(main())


def seeded_metrics(store: RunStore, job: Definition) -> Metrics:
    """Metrics that read the history of the tasks new to a scrape, in the scrape itself (not
    in a thread a scrape waits for a second at most: the read is what is tested)."""
    tasks = MemoryTasks()
    tasks.set(job, T0 + timedelta(minutes=1), 60.0)
    return Metrics(tasks, history=store, owner=OWNER, seed_spawn=lambda work: work())


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` on the loop until it holds (the in-memory action has no events)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


def test_a_failed_attempt_waiting_for_its_retry_is_not_read_back_as_the_last_failure(
    store: RunStore,
) -> None:
    job = definition("job", retry={"limit": 1, "backoffSeconds": 86400})
    metrics = seeded_metrics(store, job)
    seen: list[float | None] = []

    async def body(
        d: Dispatcher, action: ScriptedAction, clock: Clock, heard: list[RunRecord]
    ) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        clock.at(10)
        action.running()[0].finish(FAILED)
        await until(lambda: bool(heard) and isinstance(heard[-1], RetriedAttempt))
        # The first scrape comes now: the seed reads the failed attempt from the store.
        seen.append(value(metrics, LAST_FAILURE, task=KEY))
        assert value(metrics, "crontask_runs_total", task=KEY, status="failed") == 1

    play(store, job, metrics, body)
    assert seen == [None]


@pytest.mark.parametrize("then", [FAILED, SUCCESS], ids=["retry-fails", "retry-succeeds"])
def test_a_retried_attempt_read_after_its_retry_ended_is_not_the_last_failure(
    store: RunStore, then: Outcome
) -> None:
    job = definition("job", retry={"limit": 1, "backoffSeconds": 0})
    metrics = seeded_metrics(store, job)
    ends: list[float] = []

    async def body(
        d: Dispatcher, action: ScriptedAction, clock: Clock, heard: list[RunRecord]
    ) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        clock.at(10)
        action.running()[0].finish(FAILED)
        await until(lambda: len(action.attempts) == 2 and len(action.running()) == 1)
        ends.append(clock.at(20))
        action.running()[0].finish(then)
        await until(lambda: not d.active_count())

    play(store, job, metrics, body)
    # The first scrape after the run ended: what the live process heard, nothing else.
    if then is FAILED:
        assert value(metrics, LAST_FAILURE, task=KEY) == ends[0]
    else:
        assert value(metrics, LAST_FAILURE, task=KEY) is None
        assert value(metrics, LAST_SUCCESS, task=KEY) == ends[0]


def test_a_retry_abandoned_before_the_first_scrape_leaves_the_failure_before_it(
    store: RunStore,
) -> None:
    """The run ended with the failed attempt (its retry will not come): read back, it is the
    task's last failure, as it is heard live."""
    job = definition("job", retry={"limit": 2, "backoffSeconds": 86400})
    metrics = seeded_metrics(store, job)
    ends: list[float] = []

    async def body(
        d: Dispatcher, action: ScriptedAction, clock: Clock, heard: list[RunRecord]
    ) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        ends.append(clock.at(10))
        action.running()[0].finish(FAILED)
        await until(lambda: bool(heard) and isinstance(heard[-1], RetriedAttempt))
        clock.at(30)
        d.cancel_retries(KEY, TASK_CHANGED)
        await until(lambda: not d.active_count())

    play(store, job, metrics, body)
    assert value(metrics, LAST_FAILURE, task=KEY) == ends[0]


def test_a_retried_attempt_read_from_the_history_before_it_is_heard_is_withdrawn() -> None:
    """The seed's read may fall between the attempt's record being written and the
    dispatcher handing it to the metrics (the store is written first): the failure read is
    withdrawn when the attempt is heard to be retried."""
    job = definition("job", retry={"limit": 1, "backoffSeconds": 86400})
    store = MemoryRunStore()
    metrics = seeded_metrics(store, job)
    running = RunRecord(
        run_id(KEY, T0), KEY, T0, Trigger.SCHEDULE, RunStatus.RUNNING, started_at=T0
    )
    end = T0 + timedelta(seconds=10)
    failed = running.finish(RunStatus.FAILED, finished_at=end, exit_code=1)
    store.save_many([failed])
    metrics.on_run(running)
    assert value(metrics, LAST_FAILURE, task=KEY) == end.timestamp()  # read before it is heard
    metrics.on_run(RetriedAttempt.of(failed))
    assert value(metrics, LAST_FAILURE, task=KEY) is None
