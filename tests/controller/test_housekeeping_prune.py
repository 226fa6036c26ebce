"""Retention as ``crontask run`` runs it (``Housekeeping``): a real dispatcher on the in-memory
action, its records in a real SQLite store.

A run waiting for its retry has no attempt running: the store cannot tell it from a run that
ended, and pruned it (its retry then recorded attempt 2 of a run without attempt 1, which the
store took for the task's newest slot). Housekeeping names the runs the dispatcher holds, those
in flight as the prune begins and those that begin while it goes on. And it names the tasks
declared now, so that a removed task's last slot goes by age.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Collection, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.controller.components import Housekeeping
from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import DesiredState
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.store import RunQuery, sqlite_url
from reconciler.store.base import StoreUnavailable
from reconciler.store.sql import SqlRunStore
from tests.controller.test_policies import FAILED, KEY, task, until

# Limits of 0: only the mark of missed slots stays, and a manual run that is over goes.
TASK = task(
    retry={"limit": 1, "backoffSeconds": 3600},
    successfulRunsHistoryLimit=0,
    failedRunsHistoryLimit=0,
)


class _HeldStore(SqlRunStore):
    """Its prunes wait, in the store's thread, until ``go`` is set (``entered`` says one
    does): what the loop does meanwhile happens while the prune goes on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.go = threading.Event()
        self.go.set()

    def prune(self, *args: Any, **kwargs: Any) -> int:
        self.entered.set()
        assert self.go.wait(10)
        return super().prune(*args, **kwargs)


@dataclasses.dataclass
class _Declared:
    applied: bool
    desired: DesiredState


@pytest.fixture
def store(tmp_path: Path) -> Iterator[_HeldStore]:
    opened = _HeldStore.open(sqlite_url(tmp_path / "state"), writer=True)
    assert isinstance(opened, _HeldStore)
    yield opened
    opened.close()


Body = Callable[[Dispatcher, ScriptedAction, Housekeeping], Coroutine[Any, Any, None]]


def _play(store: SqlRunStore, body: Body, **options: Any) -> None:
    async def main() -> None:
        action = ScriptedAction()
        d = Dispatcher(store, owner="h:1:x", actions=Actions([action]))
        scheduler = MemoryScheduler(lambda key, at: None, datetime.now(UTC))
        scheduler.apply(Step(Operation.ADD, KEY, TASK, None))
        options.setdefault("max_age", None)
        housekeeping = Housekeeping(store, scheduler, d, Metrics(), interval=3600, **options)
        await body(d, action, housekeeping)
        await d.shutdown(0)

    asyncio.run(main())


async def _a_slot_then_a_manual_run(d: Dispatcher, action: ScriptedAction) -> RunRecord:
    """The task's newest slot (the mark of missed slots), then two manual runs that
    succeeded: a prune keeps the first and the last (the task's last success), and deletes
    the first manual run, which it returns."""
    d.fire(TASK, datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1))
    await until(lambda: len(action.running()) == 1)
    action.running()[0].finish()
    await until(lambda: not d.active_count())
    manual = []
    for _ in range(2):
        manual.append(d.fire_manual(TASK))
        await until(lambda: len(action.running()) == 1)
        action.running()[0].finish()
        await until(lambda: not d.active_count())
    return manual[0]


async def _a_manual_run_waiting_for_its_retry(d: Dispatcher, action: ScriptedAction) -> str:
    waiting = d.fire_manual(TASK)
    await until(lambda: len(action.running()) == 1)
    action.running()[0].finish(FAILED)
    await until(lambda: bool(d.waiting(KEY)))
    return waiting.id


def test_a_run_waiting_for_its_retry_outlives_a_prune(store: _HeldStore) -> None:
    async def body(d: Dispatcher, action: ScriptedAction, housekeeping: Housekeeping) -> None:
        done = await _a_slot_then_a_manual_run(d, action)
        waiting = await _a_manual_run_waiting_for_its_retry(d, action)

        await housekeeping.prune()

        assert store.attempts(done.id) == []  # over: pruned as the limits say
        assert [(r.attempt, r.status) for r in store.attempts(waiting)] == [(1, RunStatus.FAILED)]

    _play(store, body)


def test_a_run_that_begins_while_the_prune_goes_on_outlives_it(store: _HeldStore) -> None:
    """Not in flight when the prune began: heard of as its attempt began, before it could
    end and wait for its retry."""

    async def body(d: Dispatcher, action: ScriptedAction, housekeeping: Housekeeping) -> None:
        await _a_slot_then_a_manual_run(d, action)
        store.go.clear()
        pruning = asyncio.create_task(housekeeping.prune())
        await until(store.entered.is_set)
        waiting = await _a_manual_run_waiting_for_its_retry(d, action)
        store.go.set()
        await pruning

        assert [(r.attempt, r.status) for r in store.attempts(waiting)] == [(1, RunStatus.FAILED)]

    _play(store, body)


OLD = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
_ALL = RunQuery(limit=1000)


@pytest.mark.parametrize(
    ("declarations", "left"),
    [
        pytest.param(_Declared(True, DesiredState({KEY: TASK})), {KEY}, id="declared"),
        pytest.param(None, {KEY, "default/gone"}, id="not-told"),
        pytest.param(_Declared(False, DesiredState({})), {KEY, "default/gone"}, id="no-pass"),
        # Every source read empty (its tasks are kept, --allow-empty): it may be for a while.
        pytest.param(_Declared(True, DesiredState({})), {KEY, "default/gone"}, id="empty"),
    ],
)
def test_a_removed_task_s_last_slot_goes_by_age(
    store: _HeldStore, declarations: _Declared | None, left: Collection[str]
) -> None:
    for key in (KEY, "default/gone"):
        store.claim(_old_slot(key))

    async def body(d: Dispatcher, action: ScriptedAction, housekeeping: Housekeeping) -> None:
        await housekeeping.prune()

    _play(store, body, max_age=86400.0, declarations=declarations)
    assert {r.task for r in store.query(_ALL).items} == set(left)


def _old_slot(key: str) -> RunRecord:
    return RunRecord(
        id=run_id(key, OLD),
        task=key,
        scheduled_at=OLD,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
        started_at=OLD,
        finished_at=OLD + timedelta(seconds=1),
        exit_code=0,
    )


@pytest.mark.parametrize(
    ("declarations", "named"),
    [
        pytest.param(_Declared(True, DesiredState({KEY: TASK})), frozenset({KEY}), id="declared"),
        # Not known for sure: every task may retry (another replica's waiting run stays).
        pytest.param(None, None, id="not-told"),
        pytest.param(_Declared(False, DesiredState({})), None, id="no-pass"),
        pytest.param(_Declared(True, DesiredState({})), None, id="empty"),
    ],
)
def test_the_tasks_that_retry_are_named_to_the_store(
    store: _HeldStore,
    monkeypatch: pytest.MonkeyPatch,
    declarations: _Declared | None,
    named: frozenset[str] | None,
) -> None:
    """The max age waits for a failed run's retry only of a task declared with a retry limit:
    the store is told which (a task without retries kept a day of failed runs past it), or
    that it is not known (before a pass, or with every source empty: a replica then pruned
    another's run waiting for its retry)."""
    told: list[object] = []
    real = store.prune

    def prune(*args: Any, **kwargs: Any) -> int:
        told.append(kwargs.get("retrying"))
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "prune", prune)

    async def body(d: Dispatcher, action: ScriptedAction, housekeeping: Housekeeping) -> None:
        await housekeeping.prune()

    _play(store, body, declarations=declarations)
    assert told == [named]


class _DownStore(SqlRunStore):
    """Its prunes meet an outage (a full disk, a failover), as the SQL store reports one."""

    def prune(self, *args: Any, **kwargs: Any) -> int:
        raise StoreUnavailable("run store unavailable: database or disk is full")


def test_an_outage_during_a_prune_is_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Told as the recorder tells an outage: a warning with the store's words, no traceback
    (which was 5.7 KB of SQL and frames at every interval while the outage lasted)."""
    down = _DownStore.open(sqlite_url(tmp_path / "state"), writer=True)

    async def body(d: Dispatcher, action: ScriptedAction, housekeeping: Housekeeping) -> None:
        with caplog.at_level(logging.WARNING, logger="crontask"):
            await housekeeping.prune()

    try:
        _play(down, body)
    finally:
        down.close()
    [said] = [
        r for r in caplog.records if r.getMessage() == "history pruning failed; will try again"
    ]
    assert said.levelno == logging.WARNING
    assert said.exc_info is None
    assert said.fields == {"error": "run store unavailable: database or disk is full"}  # type: ignore[attr-defined]
