"""The stored record of a ``Replace`` run that waited for the run it replaces to stop (a
command's kill grace) starts when its claim was written, after that wait, not at its decision:
the API and the status page list a running run from the store, and showed it started up to
``--kill-grace`` before its process (and before the run it replaced ended)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.runner.base import Actions, failed
from reconciler.runner.memory import ScriptedAction, ScriptedAttempt
from reconciler.store import MemoryRunStore
from tests.api.fakes import definition as defined
from tests.api.fakes import view
from tests.controller.test_policies import T0, settle, until


class _OutlivesStop(ScriptedAttempt):
    """An attempt that a stop asks to end, and that ends only when finished (a command that
    ignores SIGTERM, within its kill grace)."""

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason


class _Slow(ScriptedAction):
    def attempt(self, definition: Definition, record: RunRecord) -> ScriptedAttempt:
        attempt = _OutlivesStop(record, self.auto)
        self.attempts.append(attempt)
        return attempt


def test_a_replace_run_s_stored_start_follows_the_end_of_the_run_it_replaced() -> None:
    async def main() -> tuple[RunRecord, RunRecord, RunRecord]:
        ticks = itertools.count()

        def clock() -> datetime:  # each reading a moment later
            return T0 + timedelta(milliseconds=next(ticks))

        store, action = MemoryRunStore(), _Slow()
        d = Dispatcher(store, owner="h:1:x", clock=clock, actions=Actions([action]))
        job = defined(view("job", concurrencyPolicy="Replace"))
        first = d.fire_manual(job)
        await until(lambda: len(action.running()) == 1)
        second = d.fire_manual(job)  # decided now: the first is asked to stop
        await until(lambda: action.attempts[0].stopped is not None)
        for _ in range(50):  # the kill grace goes by
            clock()
        action.attempts[0].finish(failed("Replaced", "stopped: Replaced"))
        await until(lambda: len(action.attempts) == 2 and action.attempts[1].started)
        replaced = store.get(first.id)
        running = store.get(second.id)
        await settle(d, action)
        await d.shutdown(0)
        assert replaced is not None
        assert running is not None
        return second, replaced, running

    decided, replaced, running = asyncio.run(main())

    assert running.status is RunStatus.RUNNING
    assert decided.started_at is not None
    assert running.started_at is not None
    assert replaced.finished_at is not None
    assert running.started_at > replaced.finished_at > decided.started_at
