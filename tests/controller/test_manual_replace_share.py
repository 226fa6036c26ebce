"""Run-nows of a ``Replace`` task while its run is deaf to its stop (a command that ignores
SIGTERM, within its kill grace): each replaces the ones before it, and those replaced before
they began never begin. They waited, each holding a manual run's place, until the deaf run
ended; once they no longer counted toward their task's 10 manual runs (e5b4a6e), one task's
burst took all 100 places of every task, and a run-now of any other task was skipped
``TooManyManualRuns`` ("100 in all") for the whole kill grace. A run replaced before it began
now ends at once (recorded as not started, ``Replaced``), holding nothing for the run it
waited for. In-memory action, dispatcher's own clock."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import MANUAL_MAX_TOTAL, RunRecord, RunStatus
from reconciler.runner.base import Actions, failed
from reconciler.runner.memory import ScriptedAction, ScriptedAttempt
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.controller.test_manual_replace_bound import until
from tests.helpers import definition

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@dataclasses.dataclass(eq=False)
class DeafAttempt(ScriptedAttempt):
    """Heard its stop, goes on until finished (a command within its kill grace)."""

    def stop(self, reason: str) -> None:
        self.stopped = reason


class DeafAction(ScriptedAction):
    def attempt(self, definition: Definition, record: RunRecord) -> ScriptedAttempt:
        attempt = DeafAttempt(record, self.auto)
        self.attempts.append(attempt)
        return attempt


def test_a_burst_under_replace_leaves_the_other_tasks_their_manual_runs() -> None:
    store = MemoryRunStore()
    ticks = iter(range(1, 10_000))

    def clock() -> datetime:  # every request a moment of its own: a run of its own
        return T0 + timedelta(milliseconds=next(ticks))

    async def main() -> None:
        action = DeafAction()
        d = Dispatcher(store, owner="h:1:x", clock=clock, actions=Actions([action]))
        replace, other = definition("r", concurrencyPolicy="Replace"), definition("o")
        first = d.fire_manual(replace)
        await until(lambda: len(action.running()) == 1)
        for _ in range(MANUAL_MAX_TOTAL):  # as requests come
            assert d.fire_manual(replace).status is RunStatus.RUNNING
            # The one it replaced ends before it began: the deaf run and the newest go on
            # (before, each replaced one held its place until the deaf run ended).
            await until(lambda: d.active_count() == 2)
        asked = d.fire_manual(other)
        assert (asked.status, asked.reason) == (RunStatus.RUNNING, None), asked.message
        (deaf,) = [a for a in action.running() if a.record.id == first.id]
        assert deaf.stopped == "Replaced"
        deaf.finish(failed("Replaced", "killed at the end of its kill grace"))
        await until(lambda: len(action.running()) == 2)  # the newest of r's, and o's
        for attempt in action.running():
            attempt.finish()
        await until(lambda: d.active_count() == 0)
        assert await d.drain(5)
        await d.shutdown(0)

    asyncio.run(main())
    records = store.query(RunQuery(task="default/r", limit=200)).items
    assert len(records) == MANUAL_MAX_TOTAL + 1
    assert sum(r.status is RunStatus.SUCCEEDED for r in records) == 1  # the newest
    assert sum(r.reason == "Replaced" for r in records) == MANUAL_MAX_TOTAL
    assert "TooManyManualRuns" not in {r.reason for r in records}
