"""The last-failure timestamp of a task whose runs retry, with the dispatcher wired to the
metrics as ``serve`` wires them (its run listener), on the in-memory action and store.

A failed attempt that the dispatcher retries has not ended its run: it is not the task's last
failure (``CrontaskTaskFailing`` reads it), as it is no failure to the notifications either.
The run's last attempt is; and if the retry never comes (abandoned, or cut short by crontask's
shutdown), the run ended with the failed attempt before it.
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
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Actions, Outcome
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.store import MemoryRunStore
from tests.helpers import definition
from tests.sinks.test_metrics import value

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "default/job"
FAILED = Outcome(RunStatus.FAILED, 1, "NonZeroExit", "exit code 1", "")
LAST_FAILURE = "crontask_task_last_failure_timestamp_seconds"
LAST_SUCCESS = "crontask_task_last_success_timestamp_seconds"


class Clock:
    """The dispatcher's clock, moved by the test: each attempt's end is its own instant."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> float:
        self.now = T0 + timedelta(seconds=seconds)
        return self.now.timestamp()


Body = Callable[[Dispatcher, ScriptedAction, Clock, Metrics], Coroutine[Any, Any, None]]


def play(job: Definition, body: Body) -> Metrics:
    """One crontask process: a dispatcher whose run listener is the metrics, around ``body``."""
    tasks = MemoryTasks()
    tasks.set(job, T0 + timedelta(minutes=1), 60.0)
    metrics = Metrics(tasks)

    async def main() -> None:
        action, clock = ScriptedAction(), Clock()
        d = Dispatcher(MemoryRunStore(), owner="h:1:x", clock=clock, actions=Actions([action]))
        d.subscribe(metrics.on_run)
        await body(d, action, clock, metrics)
        for attempt in action.running():
            attempt.finish()
        await d.shutdown(0)

    asyncio.run(main())
    return metrics


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` on the loop until it holds (the in-memory action has no events)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("then", [FAILED, SUCCESS], ids=["retry-fails", "retry-succeeds"])
def test_a_failed_attempt_that_is_retried_is_not_the_last_failure(then: Outcome) -> None:
    job = definition("job", retry={"limit": 1, "backoffSeconds": 0})
    ends: list[float] = []

    async def body(d: Dispatcher, action: ScriptedAction, clock: Clock, m: Metrics) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        clock.at(10)
        action.running()[0].finish(FAILED)
        await until(lambda: len(action.attempts) == 2 and len(action.running()) == 1)
        # The run waits for its retry: the task is not failing (yet), though the attempt counts.
        assert value(m, LAST_FAILURE, task=KEY) is None
        assert value(m, "crontask_runs_total", task=KEY, status="failed") == 1
        ends.append(clock.at(20))
        action.running()[0].finish(then)
        await until(lambda: not d.active_count())

    m = play(job, body)
    if then is FAILED:
        assert value(m, LAST_FAILURE, task=KEY) == ends[0]  # the run's end
    else:
        assert value(m, LAST_FAILURE, task=KEY) is None
        assert value(m, LAST_SUCCESS, task=KEY) == ends[0]


@pytest.mark.parametrize("cut", ["abandoned", "shutdown"])
def test_a_retry_that_never_comes_leaves_the_failure_before_it(cut: str) -> None:
    """The edit of the task abandons the retry that waits (skipped, TaskChanged), or the
    shutdown does (interrupted, Shutdown): the run ended with the failed attempt."""
    job = definition("job", retry={"limit": 2, "backoffSeconds": 86400})
    ends: list[float] = []

    async def body(d: Dispatcher, action: ScriptedAction, clock: Clock, m: Metrics) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        ends.append(clock.at(10))
        action.running()[0].finish(FAILED)
        await until(lambda: d.active_count() == 1 and not action.running())
        assert value(m, LAST_FAILURE, task=KEY) is None
        clock.at(30)
        if cut == "abandoned":
            d.cancel_retries(KEY, TASK_CHANGED)
        else:
            await d.shutdown(0)
        await until(lambda: not d.active_count())

    m = play(job, body)
    assert value(m, LAST_FAILURE, task=KEY) == ends[0]
