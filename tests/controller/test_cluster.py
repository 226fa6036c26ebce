"""Replicas in one process: three reconcilers over the same folder, sharing a run store and an
in-memory membership registry on a fake clock. Each task is scheduled by exactly one live
replica; a replica that dies, lapses or drains hands its tasks over; dead replicas' runs are
marked; replicas that read different definitions say where."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.controller.cluster import Cluster
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.controller.queue import WorkQueue
from reconciler.controller.reconcile import Reconciler
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.membership.base import Announcement, Timing
from reconciler.membership.memory import MemoryMembership, MemoryViews, Registry
from reconciler.runner.base import Actions
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.controller.test_reconcile import doc

T0 = datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC)
TASKS = [f"t{i:02d}" for i in range(30)]


class Clocks:
    """The registry's clock and every replica's monotonic clock move together."""

    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


class Replica:
    def __init__(self, name: str, folder: Path, store: MemoryRunStore, world: World) -> None:
        self.id = f"{name}:1:{name}"
        self.dispatcher = Dispatcher(
            store,
            owner=self.id,
            clock=lambda: world.clocks.now,
            actions=Actions([ScriptedAction(auto=SUCCESS)]),
        )
        self.dispatcher.handover = Handover(store, self.id, self.dispatcher.recorder.call)
        self.scheduler = MemoryScheduler(lambda key, at: None, T0)
        self.source = DirectorySource([folder])
        self.reconciler = Reconciler(
            [self.source], self.scheduler, self.dispatcher, clock=lambda: world.clocks.now
        )
        self.stopping = asyncio.Event()
        self.cluster = Cluster(
            Announcement(self.id),
            MemoryMembership(world.registry),
            world.views,
            store=store,
            reconciler=self.reconciler,
            dispatcher=self.dispatcher,
            queue=WorkQueue(),
            stopping=self.stopping,
            timing=Timing(renew_interval=2, renew_deadline=10, lease_seconds=15),
            monotonic=lambda: world.clocks.mono,
        )

    async def step(self) -> bool:
        """One renewal, then the full pass it asks for."""
        ok = await self.cluster.tick()
        result = await self.reconciler.run_pass(None)
        assert result.ok, result.error
        return ok

    def owned(self) -> set[str]:
        return {key.partition("/")[2] for key in self.scheduler.owned()}


class World:
    def __init__(self, folder: Path) -> None:
        self.clocks = Clocks()
        self.registry = Registry(lambda: self.clocks.now)
        self.views = MemoryViews()
        self.store = MemoryRunStore()
        self.folder = folder
        for name in TASKS:
            (folder / f"{name}.yaml").write_text(doc(name))

    def replicas(self, *names: str) -> list[Replica]:
        return [Replica(n, self.folder, self.store, self) for n in names]


async def settle(replicas: list[Replica]) -> None:
    """Every replica renews and reconciles twice: everyone has seen everyone."""
    for _ in range(2):
        for replica in replicas:
            await replica.step()


def assert_partition(replicas: list[Replica]) -> None:
    owned = [r.owned() for r in replicas]
    assert set().union(*owned) == set(TASKS)
    assert sum(len(o) for o in owned) == len(TASKS)  # disjoint: each task on one replica


def test_every_task_is_scheduled_by_exactly_one_replica(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        replicas = world.replicas("a", "b", "c")
        await settle(replicas)
        assert_partition(replicas)
        assert all(r.owned() for r in replicas)  # 30 tasks over 3: nobody is idle

    asyncio.run(main())


def test_a_dead_replicas_tasks_and_runs_are_taken_over(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b, c = world.replicas("a", "b", "c")
        await settle([a, b, c])
        lost = c.owned()
        task = sorted(lost)[0]
        slot = T0 - timedelta(seconds=30)
        world.store.claim(
            RunRecord(
                id=run_id(f"default/{task}", slot),
                task=f"default/{task}",
                scheduled_at=slot,
                trigger=Trigger.SCHEDULE,
                status=RunStatus.RUNNING,
                started_at=slot,
                owner=c.id,
            )
        )
        # c dies: it renews no more. Before its lease runs out, nothing moves.
        world.clocks.advance(10)
        await settle([a, b])
        assert a.owned() | b.owned() == set(TASKS) - lost
        world.clocks.advance(6)  # 16 s since c's last renewal: expired
        await settle([a, b])
        assert_partition([a, b])
        record = world.store.get(run_id(f"default/{task}", slot))
        assert record is not None
        assert (record.status, record.reason) == (RunStatus.INTERRUPTED, "ProcessDied")
        # The new owner inherited the task: its next run first looks for c's runs.
        new_owner = a if task in a.owned() else b
        assert new_owner.dispatcher.handover is not None
        assert new_owner.dispatcher.handover.inherited(f"default/{task}")

    asyncio.run(main())


def test_a_replica_that_cannot_renew_stops_starting_runs_before_its_lease_expires(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        world.registry.unreachable.add(a.id)
        world.clocks.advance(8)
        assert not await a.step()
        assert a.dispatcher.paused is None  # within the renew deadline: still running
        world.clocks.advance(3)  # 11 s: past the 10 s deadline, before the 15 s lease
        assert not await a.step()
        assert a.dispatcher.paused is not None
        assert "not renewed" in a.dispatcher.paused
        world.registry.unreachable.clear()
        assert await a.step()
        assert a.dispatcher.paused is None

    asyncio.run(main())


def test_slots_not_started_while_fenced_are_caught_up_when_the_renewal_works_again(
    tmp_path: Path,
) -> None:
    """One replica loses its membership store for 40 s (past its renew deadline and lease,
    nobody else to take its tasks): the minute slot due meanwhile is not started then, and
    runs as a catch-up once the renewal works again, instead of vanishing without a record."""

    world = World(tmp_path)
    slot = T0.replace(second=0) + timedelta(minutes=1)

    async def main() -> None:
        (a,) = world.replicas("a")
        await settle([a])
        world.registry.unreachable.add(a.id)
        world.clocks.advance(11)
        assert not await a.step()
        assert a.dispatcher.paused is not None
        world.clocks.advance(19)  # the slot comes due: the scheduler hands it over, fenced
        due = a.scheduler.advance(world.clocks.now)
        assert {at for _, at in due} == {slot}
        owned = a.scheduler.owned()
        fenced = {a.dispatcher.fire(owned[key], at).reason for key, at in due}
        assert fenced == {"NotStarted"}
        world.clocks.advance(10)
        world.registry.unreachable.clear()
        assert await a.step()
        await a.dispatcher.drain(5)

    asyncio.run(main())
    records = world.store.query(RunQuery(limit=100)).items
    assert sorted(r.task for r in records) == [f"default/{name}" for name in TASKS]
    for record in records:
        assert (record.id, record.trigger, record.status) == (
            run_id(record.task, slot),
            Trigger.CATCHUP,
            RunStatus.SUCCEEDED,
        )


def test_a_draining_replica_hands_its_tasks_over_at_the_next_renewal(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        assert a.owned()
        a.stopping.set()
        await a.step()  # announces draining, and gives up its own tasks
        assert a.owned() == set()
        await b.step()
        assert b.owned() == set(TASKS)
        members = {m.id: m.draining for m in b.cluster.members}
        assert members == {a.id: True, b.id: False}  # still a member while its runs finish

    asyncio.run(main())


def test_replicas_that_read_different_definitions_say_on_which_tasks(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        other = tmp_path.parent / f"{tmp_path.name}-b"
        other.mkdir()
        for name in TASKS:
            schedule = "*/5 * * * *" if name == "t07" else "* * * * *"
            if name != "t11":
                (other / f"{name}.yaml").write_text(doc(name, schedule))
        b.source.roots = [other]
        await settle([a, b])
        await a.step()  # a sees the digest b published last
        disagreement = a.cluster.disagreement
        assert disagreement is not None
        assert set(disagreement.digests) == {a.id, b.id}
        differing = dict(disagreement.tasks)
        assert set(differing) == {"default/t07", "default/t11"}
        assert differing["default/t11"][b.id] is None
        for name in ("t07", "t11"):  # b's folder catches up
            (other / f"{name}.yaml").write_text(doc(name))
        await settle([a, b])
        await a.step()
        assert a.cluster.disagreement is None

    asyncio.run(main())


def test_a_crontask_without_ha_sharing_the_store_is_left_to_the_heartbeat(
    tmp_path: Path,
) -> None:
    """A plain crontask beats in the store and is no member (the old pod of a rolling update
    to --ha): the replicas do not take it for dead; the heartbeat judges it."""

    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        plain = "old-pod:1:plain"
        world.store.beat(plain, 30.0, T0)
        world.store.claim(
            RunRecord(
                id=run_id("default/t00", T0),
                task="default/t00",
                scheduled_at=T0,
                trigger=Trigger.SCHEDULE,
                status=RunStatus.RUNNING,
                started_at=T0,
                owner=plain,
            )
        )
        await settle([a, b])
        record = world.store.get(run_id("default/t00", T0))
        assert record is not None
        assert record.status is RunStatus.RUNNING

    asyncio.run(main())
