"""Suspending a task stops its schedule, not its runs: a run waiting for its retry retries, as
a CronJob's suspend leaves the backoff retries of its running Jobs alone (README: "runs
already going finish"). A change of anything else still ends the retry (``TaskChanged``)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import account_for_slots
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunStatus, Trigger
from reconciler.runner.memory import ScriptedAction
from reconciler.scheduling.memory import MemoryScheduler
from tests.controller.test_policies import FAILED, KEY, T0, attempts, play, task, until

RETRY = {"limit": 1, "backoffSeconds": 0.05}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"suspend": True}),
        # Resumed while the retry waits (of a run begun before the suspend, or a manual one).
        ({"suspend": True}, {}),
    ],
    ids=["suspended", "resumed"],
)
def test_a_waiting_retry_outlives_a_change_of_suspend(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    running, changed = task(retry=RETRY, **before), task(retry=RETRY, **after)

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(running, T0)
        await until(lambda: len(action.running()) == 1)
        action.attempts[0].finish(FAILED)
        await until(lambda: bool(d.waiting(KEY)))
        step = Step(Operation.UPDATE, KEY, changed, running)
        account_for_slots([step], MemoryScheduler(lambda k, at: None, T0), d, T0)
        await until(lambda: len(action.running()) == 1 and len(action.attempts) == 2)
        action.attempts[1].finish()
        assert await d.drain(5)

    assert attempts(play(body)) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.SUCCEEDED, None, Trigger.RETRY),
    ]


def test_suspend_with_another_change_still_ends_the_retry() -> None:
    running = task(retry=RETRY)
    changed = task(retry=RETRY, suspend=True, command={"args": ["false"]})

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(running, T0)
        await until(lambda: len(action.running()) == 1)
        action.attempts[0].finish(FAILED)
        await until(lambda: bool(d.waiting(KEY)))
        step = Step(Operation.UPDATE, KEY, changed, running)
        account_for_slots([step], MemoryScheduler(lambda k, at: None, T0), d, T0)
        assert await d.drain(5)
        assert len(action.attempts) == 1

    assert attempts(play(body)) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.SKIPPED, "TaskChanged", Trigger.RETRY),
    ]
