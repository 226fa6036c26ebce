"""The handover of ``test_notify_handover`` through the real dispatchers and cluster: replica
``a`` runs a task when ``b`` joins and the task moves to ``b``; the run fails on ``a`` after the
move, then the task succeeds on ``b``. On the in-memory twins and fake clocks of
``test_cluster``, with the notifiers wired as ``serve`` wires them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from reconciler.controller import wiring
from reconciler.controller.options import Options
from reconciler.core.assignment import Assignment
from reconciler.core.runs import RunStatus, Trigger
from reconciler.runner.base import Actions, Outcome
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from tests.controller.test_cluster import TASKS, Replica, World, settle

FAILURE = Outcome(RunStatus.FAILED, 1, "NonZeroExit", "exit code 1", "")
TEXT = (
    "receivers:\n  - name: hook\n    type: generic\n    url: http://hook.invalid/\n"
    "routes:\n  - receiver: hook\n    events: [failed, recovered]\n"
)


def wired(replica: Replica, world: World, sent: list[tuple[str, str]]) -> Notifier:
    options = Options(notifications=parse(TEXT, "n.yaml", world.folder.parent))
    notifier = wiring.notifier(
        options, Metrics(), replica.reconciler, replica.dispatcher, world.store, replica.cluster
    )
    assert notifier is not None

    def receive(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append((body["event"], body["run"]["id"]))
        return httpx.Response(204)

    notifier.delivery.transport = httpx.MockTransport(receive)
    return notifier


async def looked_at(notifier: Notifier, count: int) -> None:
    for _ in range(1000):  # 5 s: a record the notifier did not take is never looked at
        if notifier.considered >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the notifier looked at {notifier.considered} records, not {count}")


def test_a_run_that_fails_after_its_task_moved_is_failed_then_recovered(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    world = World(folder)
    sent: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}

    async def main() -> None:
        a, b = world.replicas("a", "b")
        held = ScriptedAction()  # a's run ends when told to
        a.dispatcher.actions = Actions([held])
        b.dispatcher.actions = Actions([ScriptedAction(auto=SUCCESS)])
        name = next(t for t in TASKS if Assignment([a.id, b.id], b.id).mine(f"default/{t}"))
        key = f"default/{name}"
        notifiers = {"a": wired(a, world, sent["a"]), "b": wired(b, world, sent["b"])}
        stop = asyncio.Event()
        components = [asyncio.create_task(n.run(lambda: None, stop)) for n in notifiers.values()]
        await settle([a])
        slot = a.cluster.reconciler.clock().replace(second=0)
        a.dispatcher.fire(a.scheduler.owned()[key], slot, Trigger.SCHEDULE)
        while not held.running():
            await asyncio.sleep(0)
        await settle([a, b])  # b joins: the task moves to b, its run goes on on a
        assert name in b.owned()
        assert name not in a.owned()
        [going] = held.running()
        going.finish(FAILURE)
        await a.dispatcher.drain(5)
        await looked_at(notifiers["a"], 1)
        world.clocks.advance(1)
        b.dispatcher.fire(b.scheduler.owned()[key], b.reconciler.clock(), Trigger.MANUAL)
        await b.dispatcher.drain(5)
        await looked_at(notifiers["b"], 1)
        stop.set()  # delivers what is queued
        await asyncio.wait_for(asyncio.gather(*components), 20)
        failed_run = going.record.id
        assert sent["a"] == [("failed", failed_run)]
        assert [event for event, _ in sent["b"]] == ["recovered"]

    asyncio.run(main())
