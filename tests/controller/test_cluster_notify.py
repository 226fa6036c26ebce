"""Notifications across a handover: a task's failing/ok state is each owner's to know, and it
may change while the task is on another replica. A task that failed here, recovered on another
replica and came back is not announced as recovered twice. The same holds for a task that
seems never to leave: a replica fenced long enough for the others to take its tasks keeps them
scheduled, and when its renewal works again they are its own once more, with no change of
members it can see. On the in-memory twins and the fake clocks of ``test_cluster``, with the
notifier wired as ``serve`` wires it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

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
ROUTES = "routes:\n  - receiver: hook\n    events: [failed, recovered]\n"


def _notifier(replica: Replica, world: World, sent: list[str]) -> Notifier:
    (world.folder.parent / "url").write_text("http://hook.invalid/\n")
    text = "receivers:\n  - name: hook\n    type: generic\n    urlFile: url\n" + ROUTES
    notifications = parse(text, "n.yaml", world.folder.parent)
    options = Options(notifications=notifications)
    notifier = wiring.notifier(
        options, Metrics(), replica.reconciler, replica.dispatcher, world.store, replica.cluster
    )
    assert notifier is not None

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["event"])
        return httpx.Response(204)

    notifier.delivery.transport = httpx.MockTransport(receive)
    return notifier


async def _run_ends(replica: Replica, notifier: Notifier, key: str, trigger: Trigger) -> None:
    """One run of ``key`` on ``replica``, until the notifier has looked at its end."""
    seen = notifier.considered
    at = replica.cluster.reconciler.clock()
    if trigger is Trigger.SCHEDULE:
        at = at.replace(second=0)
    replica.dispatcher.fire(replica.scheduler.owned()[key], at, trigger)
    await replica.dispatcher.drain(5)
    while notifier.considered == seen:
        await asyncio.sleep(0)


def test_a_task_recovered_on_another_replica_is_not_recovered_again_when_it_returns(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    world = World(folder)
    sent: dict[str, list[str]] = {"a": [], "b": []}

    async def main() -> None:
        a, b = world.replicas("a", "b")
        actions = {"a": ScriptedAction(auto=FAILURE), "b": ScriptedAction(auto=SUCCESS)}
        a.dispatcher.actions = Actions([actions["a"]])
        b.dispatcher.actions = Actions([actions["b"]])
        name = next(t for t in TASKS if Assignment([a.id, b.id], b.id).mine(f"default/{t}"))
        key = f"default/{name}"
        notifiers = {"a": _notifier(a, world, sent["a"]), "b": _notifier(b, world, sent["b"])}
        stop = asyncio.Event()
        components = [asyncio.create_task(n.run(lambda: None, stop)) for n in notifiers.values()]
        await settle([a])
        await _run_ends(a, notifiers["a"], key, Trigger.SCHEDULE)  # failing, on a
        await settle([a, b])  # b joins: the task moves to b
        assert name in b.owned()
        assert name not in a.owned()
        world.clocks.advance(1)
        await _run_ends(b, notifiers["b"], key, Trigger.MANUAL)  # recovered, on b
        b.stopping.set()  # b drains: the task comes back to a
        await b.step()
        await a.step()
        assert name in a.owned()
        actions["a"].auto = SUCCESS
        world.clocks.advance(1)
        await _run_ends(a, notifiers["a"], key, Trigger.MANUAL)  # still ok, on a
        stop.set()
        await asyncio.wait_for(asyncio.gather(*components), 20)

    asyncio.run(main())
    assert sent == {"a": ["failed"], "b": ["recovered"]}


@pytest.mark.parametrize(
    ("here", "elsewhere", "back", "sent_here", "sent_elsewhere"),
    [
        # Recovered on b while a was fenced: a does not announce it again.
        (FAILURE, SUCCESS, SUCCESS, ["failed"], ["recovered"]),
        # Failing on b while a was fenced: a announces its recovery...
        (SUCCESS, FAILURE, SUCCESS, ["recovered"], ["failed"]),
        # ...and says again that it is failing: b may not have got its message out (a reminder).
        (SUCCESS, FAILURE, FAILURE, ["failed"], ["failed"]),
    ],
    ids=["recovered-elsewhere", "failing-elsewhere-recovers", "failing-elsewhere-fails"],
)
def test_a_task_that_ran_elsewhere_while_its_owner_was_fenced_is_read_again(
    tmp_path: Path,
    here: Outcome,
    elsewhere: Outcome,
    back: Outcome,
    sent_here: list[str],
    sent_elsewhere: list[str],
) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    world = World(folder)
    sent: dict[str, list[str]] = {"a": [], "b": []}

    async def main() -> None:
        a, b = world.replicas("a", "b")
        actions = {"a": ScriptedAction(auto=here), "b": ScriptedAction(auto=elsewhere)}
        a.dispatcher.actions = Actions([actions["a"]])
        b.dispatcher.actions = Actions([actions["b"]])
        notifiers = {"a": _notifier(a, world, sent["a"]), "b": _notifier(b, world, sent["b"])}
        stop = asyncio.Event()
        components = [asyncio.create_task(n.run(lambda: None, stop)) for n in notifiers.values()]
        await settle([a, b])
        name = sorted(a.owned())[0]
        key = f"default/{name}"
        await _run_ends(a, notifiers["a"], key, Trigger.SCHEDULE)
        # a cannot renew: fenced at its renew deadline, taken over once its lease has run out.
        world.registry.unreachable.add(a.id)
        world.clocks.advance(11)
        assert not await a.step()
        assert a.dispatcher.paused is not None
        await b.step()
        world.clocks.advance(5)
        assert not await a.step()
        await b.step()
        assert name in b.owned()
        assert name in a.owned()  # a still schedules it, fenced
        world.clocks.advance(1)
        await _run_ends(b, notifiers["b"], key, Trigger.MANUAL)
        # a renews again: the members it sees are the ones it saw before the fence.
        world.registry.unreachable.clear()
        assert await a.step()
        assert a.dispatcher.paused is None
        await b.step()
        assert name in a.owned()
        assert name not in b.owned()
        actions["a"].auto = back
        world.clocks.advance(1)
        await _run_ends(a, notifiers["a"], key, Trigger.MANUAL)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*components), 20)

    asyncio.run(main())
    assert sent == {"a": sent_here, "b": sent_elsewhere}
