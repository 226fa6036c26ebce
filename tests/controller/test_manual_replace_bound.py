"""Manual runs of a ``Replace`` task asked faster than the runs they replace end: each replaces
the ones before it, and only one of the task goes at a time (each waits for those it replaced
to end). The ones being replaced counted toward the task's 10 manual runs going, so the 11th
asked in a burst was skipped ``TooManyManualRuns`` though one run went. They still count toward
the bound of all tasks' manual runs: each holds its place until it has ended, and a burst
cannot pile up more of them than that. In-memory action, dispatcher's own clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core import runs
from reconciler.core.runs import MANUAL_MAX, RunStatus
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.helpers import definition

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "default/job"


def dispatcher(store: MemoryRunStore, action: ScriptedAction) -> Dispatcher:
    ticks = iter(range(1, 10_000))

    def clock() -> datetime:  # every request a moment of its own: a run of its own
        return T0 + timedelta(milliseconds=next(ticks))

    return Dispatcher(store, owner="h:1:x", clock=clock, actions=Actions([action]))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` on the loop until it holds (the in-memory action has no events)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


def test_runs_being_replaced_do_not_count_toward_the_tasks_bound() -> None:
    store = MemoryRunStore()
    asked_for = 2 * MANUAL_MAX

    async def main() -> None:
        action = ScriptedAction()
        d = dispatcher(store, action)
        replace = definition("job", concurrencyPolicy="Replace")
        # One after another on the loop: none of those replaced has ended when the next comes.
        asked = [d.fire_manual(replace) for _ in range(asked_for)]
        assert [(r.status, r.reason) for r in asked] == [(RunStatus.RUNNING, None)] * asked_for
        await until(lambda: len(action.running()) == 1)
        (last,) = action.running()
        assert last.record.id == asked[-1].id  # the newest runs, the others never began
        assert [a.record.id for a in action.attempts if a.started] == [asked[-1].id]
        last.finish()
        await until(lambda: d.active_count() == 0)
        assert await d.drain(5)
        await d.shutdown(0)

    asyncio.run(main())
    records = store.query(RunQuery(task=KEY, limit=100)).items
    assert len(records) == asked_for
    assert "TooManyManualRuns" not in {r.reason for r in records}
    assert sum(r.status == RunStatus.SUCCEEDED for r in records) == 1


def test_runs_being_replaced_still_count_toward_all_tasks_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runs, "MANUAL_MAX_TOTAL", 5)

    async def main() -> None:
        action = ScriptedAction()
        d = dispatcher(MemoryRunStore(), action)
        replace = definition("job", concurrencyPolicy="Replace")
        asked = [d.fire_manual(replace) for _ in range(6)]
        assert [r.status for r in asked[:5]] == [RunStatus.RUNNING] * 5
        assert (asked[5].status, asked[5].reason) == (RunStatus.SKIPPED, "TooManyManualRuns")
        assert asked[5].message is not None
        assert asked[5].message.startswith("manual runs going: 5 in all")
        # Once those replaced have ended, their places are free again.
        await until(lambda: len(action.running()) == 1)
        assert d.fire_manual(replace).status is RunStatus.RUNNING
        while d.active_count():
            for attempt in action.running():
                attempt.finish()
            await asyncio.sleep(0.002)
        assert await d.drain(5)
        await d.shutdown(0)

    asyncio.run(main())
