"""A task that moves to this replica from one gone, and that has no slot on record (it never ran):
the slots of the handover gap are caught up as for a task that ran before, not lost. On the
in-memory twins and the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.core.runs import RunStatus, Trigger, run_id
from reconciler.store.base import RunQuery
from tests.controller.test_cluster import T0, Replica, World, settle


async def _fire_due(replica: Replica, world: World) -> None:
    for key, at in replica.scheduler.advance(world.clocks.now):
        replica.dispatcher.fire(replica.scheduler.owned()[key], at)


def _slot_runs(
    world: World, keys: list[str], slot: datetime
) -> dict[str, tuple[Trigger, RunStatus]]:
    records = {r.id: r for r in world.store.query(RunQuery(limit=1000)).items}
    found = {}
    for key in keys:
        record = records.get(run_id(f"default/{key}", slot))
        if record is not None:
            found[key] = (record.trigger, record.status)
    return found


def test_a_never_run_task_of_a_killed_replica_catches_up_the_gap(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        lost = sorted(a.owned())
        assert lost
        slot = T0.replace(second=0) + timedelta(minutes=1)  # 12:01, after a is killed
        world.clocks.advance(40)  # 12:01:10: a (kill -9 at 12:00:30) has expired
        await _fire_due(b, world)
        await b.step()
        assert set(lost) <= b.owned()
        await b.dispatcher.drain(5)
        runs = _slot_runs(world, lost, slot)
        assert runs == dict.fromkeys(lost, (Trigger.CATCHUP, RunStatus.SUCCEEDED))

    asyncio.run(main())


def test_a_never_run_task_of_a_draining_replica_catches_up_the_gap(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        lost = sorted(a.owned())
        slot = T0.replace(second=0) + timedelta(minutes=1)
        world.clocks.advance(29)  # 12:00:59
        a.stopping.set()
        await a.step()  # draining: a schedules nothing from now on
        world.clocks.advance(2)  # 12:01:01: the slot falls between a's drain and b's renewal
        await _fire_due(b, world)
        await b.step()
        assert set(lost) <= b.owned()
        await b.dispatcher.drain(5)
        runs = _slot_runs(world, lost, slot)
        assert runs == dict.fromkeys(lost, (Trigger.CATCHUP, RunStatus.SUCCEEDED))

    asyncio.run(main())


def test_a_task_moving_between_live_replicas_catches_up_nothing_new(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        world.clocks.advance(40)
        await _fire_due(a, world)
        await _fire_due(b, world)
        (c,) = world.replicas("c")  # a joins: tasks move from live replicas that ran them
        await settle([a, b, c])
        await c.dispatcher.drain(5)
        records = world.store.query(RunQuery(limit=1000)).items
        assert not [r for r in records if r.trigger == Trigger.CATCHUP]

    asyncio.run(main())
