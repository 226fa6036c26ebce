"""The fence (see ``controller.cluster``): a replica that has not renewed within the renew
deadline stops starting runs, however the renewal went wrong: refused, slow, still in flight,
or failed in a way nobody foresaw. On the in-memory twins and the fake clocks of
``test_cluster``."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path

from reconciler.core.assignment import Assignment
from reconciler.core.runs import RunStatus
from reconciler.membership.base import Announcement, Member
from reconciler.membership.memory import MemoryMembership, Registry
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.store.base import RunQuery
from tests.controller.test_cluster import T0, TASKS, Replica, World, settle
from tests.controller.test_policies import FAILED, until
from tests.controller.test_reconcile import doc


class Slow(MemoryMembership):
    """The renewal is written at once; its answer comes back ``delay`` seconds later."""

    def __init__(self, registry: Registry, world: World, delay: float) -> None:
        super().__init__(registry)
        self.world = world
        self.delay = delay

    def renew(self, me: Announcement) -> list[Member]:
        members = super().renew(me)
        self.world.clocks.advance(self.delay)
        return members


class Hung(MemoryMembership):
    """The renewal waits until released (a TCP connection nobody answers)."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self.entered = threading.Event()
        self.release = threading.Event()

    def renew(self, me: Announcement) -> list[Member]:
        self.entered.set()
        self.release.wait(30)
        return super().renew(me)


class Broken(MemoryMembership):
    """A renewal that fails as no one foresaw (a record that does not parse, say)."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self.calls = 0

    def renew(self, me: Announcement) -> list[Member]:
        self.calls += 1
        raise ValueError("invalid literal for int() with base 10: '\u00b2'")


def test_the_renew_deadline_counts_from_when_the_renewal_began(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        a.cluster.membership = Slow(world.registry, world, 9)
        assert await a.step()  # written at t, answered at t + 9
        world.registry.unreachable.add(a.id)
        world.clocks.advance(2)
        assert not await a.step()  # t + 11: the record written at t is 11 s old
        assert a.dispatcher.paused is not None

    asyncio.run(main())


def test_a_renewal_answered_after_the_deadline_does_not_count(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        (a,) = world.replicas("a")
        await settle([a])
        a.cluster.membership = Slow(world.registry, world, 11)
        assert not await a.cluster.tick()
        assert a.dispatcher.paused is not None
        a.cluster.membership = MemoryMembership(world.registry)
        assert await a.cluster.tick()
        assert a.dispatcher.paused is None

    asyncio.run(main())


def _quick(replica: Replica) -> Hung:
    """A hung membership, and an interval short in real time: the watchdog reads the fake
    clock at least every interval."""
    hung = Hung(replica.cluster.membership.registry)  # type: ignore[attr-defined]
    replica.cluster.membership = hung
    replica.cluster.timing = dataclasses.replace(replica.cluster.timing, renew_interval=0.01)
    return hung


def test_a_renewal_still_in_flight_at_the_deadline_fences(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        hung = _quick(a)
        try:
            tick = asyncio.ensure_future(a.cluster.tick())
            await asyncio.to_thread(hung.entered.wait, 10)
            world.clocks.advance(9)
            assert a.dispatcher.paused is None
            world.clocks.advance(1)  # the renew deadline, the renewal still unanswered
            assert not await asyncio.wait_for(tick, 10)
            assert a.dispatcher.paused is not None
            # The next tick waits on the same renewal rather than starting a second one.
            hung.entered.clear()
            assert not await asyncio.wait_for(a.cluster.tick(), 10)
            assert not hung.entered.is_set()
        finally:
            hung.release.set()
        # Answered at last, but begun 10 s ago or more: it does not count.
        assert not await asyncio.wait_for(a.cluster.tick(), 10)
        assert a.dispatcher.paused is not None
        assert await asyncio.wait_for(a.cluster.tick(), 10)  # a new renewal, answered now
        assert a.dispatcher.paused is None

    asyncio.run(main())


def test_an_unexpected_renewal_error_fences_and_the_replica_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        (a,) = world.replicas("a")
        await settle([a])
        broken = Broken(world.registry)
        a.cluster.membership = broken
        assert not await a.cluster.tick()
        assert a.dispatcher.paused is None
        world.clocks.advance(10)
        assert not await a.cluster.tick()
        assert a.dispatcher.paused is not None

        # The component itself goes on renewing (it is not ended, nor the process with it).
        stop = asyncio.Event()
        a.cluster.timing = dataclasses.replace(a.cluster.timing, renew_interval=0.01)
        a.cluster.membership = broken = Broken(world.registry)
        running = asyncio.ensure_future(a.cluster.run(lambda: None, stop))
        while broken.calls < 3:
            await asyncio.sleep(0.01)
            assert not running.done()
        stop.set()
        await asyncio.wait_for(running, 10)

        a.cluster.membership = MemoryMembership(world.registry)
        assert await a.cluster.tick()
        assert a.dispatcher.paused is None

    asyncio.run(main())


def test_a_view_dropped_while_cut_off_is_published_again(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        world.registry.unreachable.add(a.id)
        world.clocks.advance(20)
        assert not await a.step()
        world.views.drop(a.id)  # its record and view forgotten meanwhile
        world.registry.unreachable.clear()
        assert await a.step()
        await a.step()  # the next announcement publishes it again
        assert world.views.differing([a.id, b.id]) == []

    asyncio.run(main())


def test_the_fence_comes_at_the_deadline_not_at_the_next_tick(tmp_path: Path) -> None:
    """Renewals that fail at once, an interval long next to the time left before the lease
    runs out (4 s, 10 s, 11 s is accepted): the replica must not wait a whole interval after
    the deadline to stop starting runs, or the others could take its tasks first."""

    async def main() -> None:
        world = World(tmp_path)
        (a,) = world.replicas("a")
        await settle([a])
        # An interval no test waits out in real time: only a wake at the deadline fences.
        a.cluster.timing = dataclasses.replace(a.cluster.timing, renew_interval=9.5)
        stop = asyncio.Event()

        def joined() -> None:
            world.registry.unreachable.add(a.id)  # every renewal from now on fails at once
            world.clocks.advance(9.9)  # 0.1 s before the deadline

        running = asyncio.ensure_future(a.cluster.run(joined, stop))
        try:
            await asyncio.sleep(0.3)  # renewals fail; the deadline is not there yet
            assert a.dispatcher.paused is None
            world.clocks.advance(0.2)  # the deadline passes while the loop waits
            deadline = asyncio.get_running_loop().time() + 5
            while a.dispatcher.paused is None:
                assert asyncio.get_running_loop().time() < deadline, "not fenced"
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)

    asyncio.run(main())


def test_a_retry_held_by_the_fence_goes_to_the_new_owner_if_its_task_moved(
    tmp_path: Path,
) -> None:
    """The fence holds a due retry; meanwhile a replica joins and the task moves to it. When
    the renewal works again, the retry must not start here: it is recorded HandedOver."""
    ids = {name: f"{name}:1:{name}" for name in "abc"}
    key = next(
        f"default/{t}"
        for t in TASKS
        if Assignment([ids["a"], ids["b"]], ids["a"]).owner(f"default/{t}") == ids["a"]
        and Assignment(list(ids.values()), ids["a"]).owner(f"default/{t}") == ids["c"]
    )
    name = key.partition("/")[2]
    world = World(tmp_path)
    (tmp_path / f"{name}.yaml").write_text(
        doc(name, extra="  retry: {limit: 1, backoffSeconds: 0}\n")
    )

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action = ScriptedAction()
        a.dispatcher.actions = Actions([action])
        a.dispatcher.fire(a.scheduler.owned()[key], T0.replace(second=0))
        await until(lambda: len(action.running()) == 1)
        world.registry.unreachable.add(a.id)
        world.clocks.advance(11)
        assert not await a.cluster.tick()
        assert a.dispatcher.paused is not None
        action.attempts[0].finish(FAILED)
        await until(lambda: bool(a.dispatcher.waiting(key)))  # held by the fence
        (c,) = world.replicas("c")
        world.clocks.advance(6)
        await settle([b, c])  # a has expired: the task is c's now
        world.registry.unreachable.clear()
        assert await a.cluster.tick()
        assert a.dispatcher.paused is None
        assert not a.reconciler.mine(key)
        assert await a.dispatcher.drain(5)
        assert len(action.attempts) == 1  # the retry never started here

    asyncio.run(main())
    records = world.store.query(RunQuery(limit=100)).items
    mine = [r for r in records if r.task == key and r.owner == ids["a"]]
    assert sorted((r.attempt, r.status, r.reason) for r in mine) == [
        (1, RunStatus.FAILED, "NonZeroExit"),
        (2, RunStatus.SKIPPED, "HandedOver"),
    ]


def test_a_renewal_begun_just_before_the_deadline_and_unanswered_fences_at_it(
    tmp_path: Path,
) -> None:
    """A renewal may run for an interval: one begun 0.3 s before the deadline that hangs must
    not leave the replica starting runs for the rest of that interval past the deadline."""

    async def main() -> None:
        world = World(tmp_path)
        (a,) = world.replicas("a")
        await settle([a])
        hung = Hung(world.registry)
        a.cluster.membership = hung
        # An interval no test waits out in real time: only a wake at the deadline fences.
        a.cluster.timing = dataclasses.replace(a.cluster.timing, renew_interval=9.5)
        world.clocks.advance(9.7)
        tick = asyncio.ensure_future(a.cluster.tick())
        try:
            await asyncio.to_thread(hung.entered.wait, 10)
            assert a.dispatcher.paused is None
            world.clocks.advance(0.5)  # the deadline passes, the renewal still unanswered
            await until(lambda: a.dispatcher.paused is not None)
        finally:
            hung.release.set()
        # Answered at last, but begun before the deadline and within its budget: it counts.
        assert await asyncio.wait_for(tick, 10)
        assert a.dispatcher.paused is None

    asyncio.run(main())
