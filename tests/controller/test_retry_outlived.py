"""A task removed, changed or moved away while one of its attempts runs: the attempt goes on,
but no retry follows it (it would run the definition the run began with); the retry that
will not happen is recorded as its attempt, as for a retry that was waiting."""

from __future__ import annotations

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import account_for_slots
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunStatus, Trigger, run_id
from reconciler.runner.memory import ScriptedAction
from reconciler.scheduling.memory import MemoryScheduler
from tests.controller.test_policies import FAILED, KEY, T0, attempts, play, task, until


@pytest.mark.parametrize(
    ("operation", "elsewhere", "reason"),
    [
        (Operation.REMOVE, False, "TaskRemoved"),
        (Operation.UPDATE, False, "TaskChanged"),
        (Operation.REMOVE, True, "HandedOver"),
    ],
)
def test_a_task_removed_or_changed_while_its_attempt_runs_does_not_retry(
    operation: Operation, elsewhere: bool, reason: str
) -> None:
    job = task(retry={"limit": 3, "backoffSeconds": 0})
    # Only the history limit differs: any change of the spec cancels retries, as for one
    # that waits (the change cannot be told apart from one of what runs without a rule).
    changed = task(retry={"limit": 3, "backoffSeconds": 0}, failedRunsHistoryLimit=7)

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        desired = None if operation is Operation.REMOVE else changed
        scheduler = MemoryScheduler(lambda k, at: None, T0)
        step = Step(operation, KEY, desired, job)
        account_for_slots([step], scheduler, d, T0, elsewhere=lambda key: elsewhere)
        assert len(action.running()) == 1  # the attempt itself goes on
        action.attempts[0].finish(FAILED)
        assert await d.drain(5)
        assert len(action.attempts) == 1  # no retry started

    store = play(body)
    assert attempts(store) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.SKIPPED, reason, Trigger.RETRY),
    ]
    skipped = store.attempts(run_id(KEY, T0))[1]
    assert "before this retry could start" in (skipped.message or "")


def test_a_task_changed_while_its_attempt_runs_succeeds_with_no_retry_record() -> None:
    """Nothing to retry: the attempt's own record is the run's last."""
    job = task(retry={"limit": 3, "backoffSeconds": 0})

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        changed = task(schedule="*/5 * * * *", retry={"limit": 3, "backoffSeconds": 0})
        scheduler = MemoryScheduler(lambda k, at: None, T0)
        account_for_slots([Step(Operation.UPDATE, KEY, changed, job)], scheduler, d, T0)
        action.attempts[0].finish()
        assert await d.drain(5)

    store = play(body)
    assert attempts(store) == [(1, RunStatus.SUCCEEDED, None, Trigger.SCHEDULE)]
