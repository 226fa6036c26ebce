"""A task that moves to this replica from one gone, and that has no slot on record (it never ran):
the slots of the handover gap are caught up as for a task that ran before, not lost. On the
in-memory twins and the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.core.assignment import Assignment
from reconciler.core.runs import RunStatus, Trigger, run_id
from reconciler.store.base import RunQuery
from tests.controller.test_cluster import T0, TASKS, Replica, World, settle
from tests.controller.test_reconcile import doc


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


def test_a_pass_of_a_few_keys_between_the_handover_and_its_full_pass_loses_no_catch_up(
    tmp_path: Path,
) -> None:
    """A file event or an API write applies a pass of its own keys after the renewal that
    moved a's tasks here and before the full pass that renewal asked for: the full pass still
    compares the moved tasks with their last slots and catches the gap up."""

    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        lost = sorted(a.owned())
        mine = sorted(b.owned())
        assert lost
        assert mine
        slot = T0.replace(second=0) + timedelta(minutes=1)
        world.clocks.advance(40)
        await _fire_due(b, world)
        assert await b.cluster.tick()  # a's tasks are b's now; a full pass is asked for
        hinted = await b.reconciler.run_pass({"file": [str(tmp_path / f"{mine[0]}.yaml")]})
        assert hinted.ok, hinted.error
        assert not set(lost) & b.owned()  # that pass compared its own key only
        result = await b.reconciler.run_pass(None)
        assert result.ok, result.error
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
        # Both stay live up to 12:01:10, renewing every 2 s: a jump of 40 s with no renewal
        # would fence them (their slots not started then, and caught up later).
        for _ in range(20):
            world.clocks.advance(2)
            for replica in (a, b):
                assert await replica.cluster.tick()
        await _fire_due(a, world)
        await _fire_due(b, world)
        (c,) = world.replicas("c")  # a joins: tasks move from live replicas that ran them
        await settle([a, b, c])
        await c.dispatcher.drain(5)
        records = world.store.query(RunQuery(limit=1000)).items
        assert not [r for r in records if r.trigger == Trigger.CATCHUP]

    asyncio.run(main())


def test_a_task_created_after_the_killed_replica_last_renewed_catches_up_nothing_before_it(
    tmp_path: Path,
) -> None:
    """The gap is counted from the gone replica's last renewal only for the tasks that existed
    then: a task first seen later (added to the folder between that replica's death and the
    handover) gets no record, and no run, for a slot from before it was there."""

    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        world.clocks.advance(20)  # 12:00:50: a renews for the last time, then is killed
        await settle([a, b])
        members = Assignment([a.id, b.id], a.id)
        name = next(f"new{i}" for i in range(100) if members.mine(f"default/new{i}"))
        slot = T0.replace(second=0) + timedelta(minutes=1)  # 12:01, a is dead
        world.clocks.advance(12)  # 12:01:02: the task appears, after the 12:01 slot
        (world.folder / f"{name}.yaml").write_text(doc(name))
        await _fire_due(b, world)
        await b.step()  # b reads it; a has not expired yet: it is a's
        assert name not in b.owned()
        world.clocks.advance(4)  # 12:01:06: a has expired, b takes its tasks
        await b.step()
        assert name in b.owned()
        await b.dispatcher.drain(5)
        records = world.store.query(RunQuery(task=f"default/{name}", limit=100)).items
        assert records == []
        # The tasks a had when it last renewed do catch up the slot it missed.
        lost = sorted(a.owned())
        assert _slot_runs(world, lost, slot) == dict.fromkeys(
            lost, (Trigger.CATCHUP, RunStatus.SUCCEEDED)
        )

    asyncio.run(main())


def test_a_replica_started_just_before_the_gap_catches_up_the_tasks_there_before_it(
    tmp_path: Path,
) -> None:
    """The tasks a replica read at its first pass were there for an unknown while: a later pass
    that reads them again (here, the resync of every step) does not make them new, so when the
    replica that had them is gone, their gap counts from its last renewal."""

    async def main() -> None:
        world = World(tmp_path)
        (a,) = world.replicas("a")
        await settle([a])
        world.clocks.advance(25)  # 12:00:55: a renews for the last time, then is killed
        await a.step()
        world.clocks.advance(3)  # 12:00:58: c starts; a's lease still runs
        (c,) = world.replicas("c")
        await c.step()
        lost = sorted(set(TASKS) - c.owned())
        assert lost
        slot = T0.replace(second=0) + timedelta(minutes=1)  # 12:01, a is dead
        world.clocks.advance(4)  # 12:01:02: c reads every task again
        await _fire_due(c, world)
        await c.step()
        world.clocks.advance(9)  # 12:01:11: a has expired, c takes its tasks
        await c.step()
        assert set(lost) <= c.owned()
        await c.dispatcher.drain(5)
        assert _slot_runs(world, lost, slot) == dict.fromkeys(
            lost, (Trigger.CATCHUP, RunStatus.SUCCEEDED)
        )

    asyncio.run(main())


def test_a_never_run_task_of_a_killed_replica_with_a_long_lease_counts_its_whole_gap(
    tmp_path: Path,
) -> None:
    """a renews with a lease 40 times b's: it is judged by its own, so its tasks move long
    after it died, and the gap still counts from its last renewal, not from 10 of b's
    leases back (those slots were neither run nor recorded)."""

    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        a.cluster.me = dataclasses.replace(a.cluster.me, lease_seconds=600)
        await settle([a, b])
        lost = sorted(a.owned())
        assert lost
        world.clocks.advance(610)  # a (kill -9 at 12:00:30) expires at 12:10:30
        await _fire_due(b, world)
        await b.step()
        assert set(lost) <= b.owned()
        await b.dispatcher.drain(5)
        keys = {f"default/{name}" for name in lost}
        records = [r for r in world.store.query(RunQuery(limit=1000)).items if r.task in keys]
        # 12:01 to 12:09 are one Superseded record, 12:10 runs: every slot of the gap is said.
        skipped = [r for r in records if r.status is RunStatus.SKIPPED]
        assert {r.task for r in skipped} == keys
        assert all("9 slots" in (r.message or "") for r in skipped), skipped[0].message

    asyncio.run(main())
