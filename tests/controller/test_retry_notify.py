"""Notifications of runs that retry, with the dispatcher and the notifier wired as ``serve``
wires them (the dispatcher's run listener, the history read from the run store), on the
in-memory action and store and a receiver of httpx's mock transport.

Whether a failed attempt is retried is the dispatcher's decision, made with the definition
the run began with: the notifier follows it, whatever the definition in force says by the
time the attempt ends. A retry that crontask's own shutdown abandons or cuts short leaves its
run ended by the failed attempt before it: notified once, and still failing after a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.controller.active import TASK_CHANGED
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.wiring import _recent_runs
from reconciler.core.desired import Definition, DesiredState
from reconciler.core.runs import RunStatus, Trigger, run_id
from reconciler.runner.base import Actions, Outcome
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from reconciler.store import MemoryRunStore
from tests.helpers import definition

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "default/job"
FAILED = Outcome(RunStatus.FAILED, 1, "NonZeroExit", "exit code 1", "")
ROUTES = "routes:\n  - receiver: hook\n    events: [failed, recovered, everyFailure]\n"


@dataclasses.dataclass(frozen=True)
class Sent:
    event: str
    attempt: int
    status: str
    reminder: bool


def task(**retry: Any) -> Definition:
    return definition("job", retry=retry)


def notifier(tmp_path: Path, store: MemoryRunStore, sent: list[Sent]) -> Notifier:
    (tmp_path / "url").write_text("http://hook.invalid/\n")
    text = "receivers:\n  - name: hook\n    type: generic\n    urlFile: url\n" + ROUTES

    def receive(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        run = body["run"]
        sent.append(Sent(body["event"], run["attempt"], run["status"], body["reminder"]))
        return httpx.Response(204)

    return Notifier(
        parse(text, "n.yaml", tmp_path),
        metrics=Metrics(),
        history=lambda key: _recent_runs(store, key),
        transport=httpx.MockTransport(receive),
    )


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` on the loop until it holds (the in-memory action has no events)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


Body = Callable[[Dispatcher, ScriptedAction, Notifier], Coroutine[Any, Any, None]]


def play(tmp_path: Path, store: MemoryRunStore, body: Body) -> list[Sent]:
    """One crontask process: a dispatcher and its notifier around ``body``, then shut down
    (the dispatcher first, then the notifier, which delivers what it queued)."""
    sent: list[Sent] = []

    async def main() -> None:
        action = ScriptedAction()
        d = Dispatcher(store, owner="h:1:x", clock=lambda: T0, actions=Actions([action]))
        n = notifier(tmp_path, store, sent)
        d.subscribe(n.on_run)
        stop, ready = asyncio.Event(), asyncio.Event()
        component = asyncio.create_task(n.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 5)
        await body(d, action, n)
        for attempt in action.running():
            attempt.finish()
        await d.shutdown(0)
        stop.set()
        await asyncio.wait_for(component, 20)

    asyncio.run(main())
    return sent


def attempts(store: MemoryRunStore, slot: datetime = T0) -> list[tuple[Any, ...]]:
    return [(a.attempt, a.status, a.reason) for a in store.attempts(run_id(KEY, slot))]


@pytest.mark.parametrize(
    ("began", "now", "expected"),
    [
        # No retry when the run began: its failure is final, however many retries the edit
        # allows (its retry would run the new definition, not the one it began with).
        (0, 2, [(1, RunStatus.FAILED, "NonZeroExit")]),
        # Retries when it began: the dispatcher retries, then abandons the retry the edit
        # cancelled (TaskChanged): the run ended with attempt 1.
        (
            2,
            0,
            [(1, RunStatus.FAILED, "NonZeroExit"), (2, RunStatus.SKIPPED, TASK_CHANGED)],
        ),
    ],
    ids=["retry-added", "retry-removed"],
)
def test_a_retry_limit_edited_while_an_attempt_runs_changes_nothing_of_its_notification(
    tmp_path: Path, began: int, now: int, expected: list[tuple[Any, ...]]
) -> None:
    store = MemoryRunStore()

    async def body(d: Dispatcher, action: ScriptedAction, n: Notifier) -> None:
        first = task(limit=began, backoffSeconds=1)
        n.after_pass(DesiredState({KEY: first}))
        d.fire(first, T0)
        await until(lambda: len(action.running()) == 1)
        # The edit is in force while the attempt runs, as a pass applies it.
        d.cancel_retries(KEY, TASK_CHANGED)
        n.after_pass(DesiredState({KEY: task(limit=now, backoffSeconds=1)}))
        action.running()[0].finish(FAILED)
        await until(lambda: len(attempts(store)) == len(expected) and not d.active_count())
        await until(lambda: n.considered == len(expected))

    sent = play(tmp_path, store, body)
    assert attempts(store) == expected
    assert sorted(sent, key=lambda s: s.event) == [
        Sent("everyFailure", 1, "failed", False),
        Sent("failed", 1, "failed", False),
    ]


@pytest.mark.parametrize("retry", ["waiting", "running"])
def test_a_failure_whose_retry_the_shutdown_cuts_is_notified_once_and_survives_a_restart(
    tmp_path: Path, retry: str
) -> None:
    store = MemoryRunStore()
    job = task(limit=2, backoffSeconds=86400 if retry == "waiting" else 0)

    async def before(d: Dispatcher, action: ScriptedAction, n: Notifier) -> None:
        n.after_pass(DesiredState({KEY: job}))
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        action.running()[0].finish(FAILED)
        if retry == "running":
            await until(lambda: len(action.attempts) == 2 and len(action.running()) == 1)
        else:
            await until(lambda: d.active_count() == 1 and not action.running())
        await until(lambda: n.considered == 1)  # the failure, which a retry follows
        await d.shutdown(0)  # abandons the waiting retry, or stops the running one
        await until(lambda: n.considered == 2)

    sent = play(tmp_path, store, before)
    cut = (2, RunStatus.INTERRUPTED, "Shutdown")
    assert attempts(store) == [(1, RunStatus.FAILED, "NonZeroExit"), cut]
    assert sorted(sent, key=lambda s: s.event) == [
        Sent("everyFailure", 1, "failed", False),
        Sent("failed", 1, "failed", False),
    ]

    # After a restart the task is still failing: its next success is a recovery, and nothing
    # more is said of the failure before the restart.
    later = T0 + timedelta(hours=1)

    async def after(d: Dispatcher, action: ScriptedAction, n: Notifier) -> None:
        n.after_pass(DesiredState({KEY: job}))
        action.auto = SUCCESS
        d.fire(job, later, Trigger.MANUAL)
        await until(lambda: n.considered == 1)

    assert play(tmp_path, store, after) == [Sent("recovered", 1, "succeeded", False)]
