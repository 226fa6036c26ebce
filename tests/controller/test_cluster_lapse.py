"""A replica whose membership lapsed (its process paused past its lease: SIGSTOP, a frozen VM)
and that renews again sees the same members as before, yet the others took its tasks
meanwhile and may be running them. Its retries are not carried over that gap, and the next
run of each of its tasks looks in the store first. On the in-memory twins and the fake clocks
of ``test_cluster``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from reconciler.core.assignment import Assignment
from reconciler.core.runs import RunStatus, Trigger
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.store.base import RunQuery
from tests.controller.test_cluster import T0, TASKS, World, settle
from tests.controller.test_policies import FAILED, until
from tests.controller.test_reconcile import doc

IDS = {name: f"{name}:1:{name}" for name in "ab"}
# A task of a's while a and b are members.
KEY = next(
    f"default/{t}" for t in TASKS if Assignment(list(IDS.values()), IDS["a"]).mine(f"default/{t}")
)
NAME = KEY.partition("/")[2]
SLOT = T0.replace(second=0)


def world_with(tmp_path: Path, retry: str) -> World:
    world = World(tmp_path)
    extra = f"  concurrencyPolicy: Forbid\n  retry: {retry}\n"
    (tmp_path / f"{NAME}.yaml").write_text(doc(NAME, extra=extra))
    return world


def a_records(world: World) -> list[tuple[int, RunStatus, str | None]]:
    records = world.store.query(RunQuery(task=KEY, limit=100)).items
    return sorted((r.attempt, r.status, r.reason) for r in records if r.owner == IDS["a"])


def test_a_retry_waiting_while_its_replica_was_paused_past_its_lease_is_handed_over(
    tmp_path: Path,
) -> None:
    """The attempt failed, its retry waits for its backoff; a is paused 20 s (its lease is
    15 s) and b takes the task and runs it. When a runs again the retry is due at once: it
    must not start before a renewal says what is still a's, and that renewal finds a's
    membership lapsed: the retry is recorded HandedOver, never started."""
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0.2}")

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        assert NAME in a.owned()
        action = ScriptedAction()
        a.dispatcher.actions = Actions([action])
        a.dispatcher.fire(a.scheduler.owned()[KEY], SLOT)
        await until(lambda: len(action.running()) == 1)
        action.attempts[0].finish(FAILED)
        await until(lambda: bool(a.dispatcher.waiting(KEY)))  # its backoff
        world.clocks.advance(20)  # a is paused past its lease (SIGSTOP, then SIGCONT)
        await b.step()  # a has expired: the task is b's, which runs it
        assert NAME in b.owned()
        b_action = ScriptedAction()
        b.dispatcher.actions = Actions([b_action])
        b.dispatcher.fire(b.scheduler.owned()[KEY], SLOT + timedelta(seconds=50), Trigger.MANUAL)
        await until(lambda: len(b_action.running()) == 1)
        # a runs again: its retry comes due before its renewal, and is held.
        await until(lambda: a.dispatcher.paused is not None and bool(a.dispatcher.waiting(KEY)))
        assert len(action.attempts) == 1
        assert await a.step()  # the same members as before the pause; its record was new
        assert a.dispatcher.paused is None
        assert await a.dispatcher.drain(5)
        assert len(action.attempts) == 1  # the retry never started on a
        b_action.attempts[0].finish()
        assert await b.dispatcher.drain(5)

    asyncio.run(main())
    assert a_records(world) == [
        (1, RunStatus.FAILED, "NonZeroExit"),
        (2, RunStatus.SKIPPED, "HandedOver"),
    ]


def test_an_attempt_running_through_the_lapse_is_not_retried(tmp_path: Path) -> None:
    """a renews again before b has looked: nobody marked its run, which goes on (one that b
    marked interrupted meanwhile is stopped: ``test_cluster_lapse_disowned``)."""
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0}")

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action = ScriptedAction()
        a.dispatcher.actions = Actions([action])
        a.dispatcher.fire(a.scheduler.owned()[KEY], SLOT)
        await until(lambda: len(action.running()) == 1)
        world.clocks.advance(20)  # a is paused past its lease (SIGSTOP, then SIGCONT)
        assert await a.step()
        await b.step()  # a is a member again: its run is its own
        assert await a.step()
        assert len(action.running()) == 1  # its command went on: it is left to end
        assert a.dispatcher.handover is not None
        assert all(a.dispatcher.handover.inherited(k) for k in a.scheduler.owned())
        action.attempts[0].finish(FAILED)
        assert await a.dispatcher.drain(5)
        assert len(action.attempts) == 1

    asyncio.run(main())
    assert a_records(world) == [
        (1, RunStatus.FAILED, "NonZeroExit"),
        (2, RunStatus.SKIPPED, "HandedOver"),
    ]


def test_a_renewal_within_the_lease_leaves_retries_and_tasks_alone(tmp_path: Path) -> None:
    """Fenced but not lapsed (11 s without a renewal, the lease is 15 s): nobody could take
    the task, and the retry held by the fence starts when the renewal works again."""
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0}")

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action = ScriptedAction()
        a.dispatcher.actions = Actions([action])
        a.dispatcher.fire(a.scheduler.owned()[KEY], SLOT)
        await until(lambda: len(action.running()) == 1)
        world.clocks.advance(11)
        action.attempts[0].finish(FAILED)
        await until(lambda: a.dispatcher.paused is not None and bool(a.dispatcher.waiting(KEY)))
        assert await a.step()
        await until(lambda: len(action.attempts) == 2)
        action.attempts[1].finish()
        assert await a.dispatcher.drain(5)
        assert a.dispatcher.handover is not None
        assert not a.dispatcher.handover.inherited(KEY)

    asyncio.run(main())
    assert a_records(world) == [
        (1, RunStatus.FAILED, "NonZeroExit"),
        (2, RunStatus.SUCCEEDED, None),
    ]
