"""With replicas a retry's claim looks for a run of its task going on another replica, as a
first attempt's does (``controller.handover``): a retry is no exception to ``Forbid`` (a
replica whose membership lapsed may find the task's new owner running it)."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunStatus, Trigger
from reconciler.runner.memory import ScriptedAction
from reconciler.store import MemoryRunStore
from tests.controller.test_policies import (
    FAILED,
    T0,
    attempts,
    foreign_run,
    play,
    settle,
    task,
    until,
    with_handover,
)


@pytest.mark.parametrize(
    ("policy", "retry"),
    [
        ("Forbid", (2, RunStatus.SKIPPED, "ConcurrencyForbid", Trigger.RETRY)),
        ("Allow", (2, RunStatus.SUCCEEDED, None, Trigger.RETRY)),
    ],
)
def test_a_retry_looks_for_a_run_of_its_task_on_another_replica(
    policy: str, retry: tuple[object, ...]
) -> None:
    """As a first attempt does (``handover.py``): a retry is no exception to Forbid."""
    job = task(concurrencyPolicy=policy, retry={"limit": 1, "backoffSeconds": 0})

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        store = cast(MemoryRunStore, d.recorder.store)
        with_handover(d, store)
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        foreign_run(store, T0 + timedelta(minutes=1))  # another replica runs the task now
        action.attempts[0].finish(FAILED)
        await settle(d, action)  # the retry, if it starts, succeeds

    store = play(body)
    assert attempts(store) == [(1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE), retry]
