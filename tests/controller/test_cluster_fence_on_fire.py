"""A slot fired after the renew deadline, before the renewal loop noticed, is held by the fence.

A replica stopped (SIGSTOP, a frozen VM) past its renew deadline and resumed hands over the
slots due meanwhile before its renewal loop has run: the dispatcher must look at the fence's
clock itself (``Dispatcher.fire``, ``Dispatcher.due``), not trust a ``paused`` that nobody has
set yet. Otherwise the slot is claimed in the store by a replica that may no longer own its
task: the replica that took the task over is refused that slot's claim, and the slot runs
nowhere (it ends ``HandedOver`` here, found in a review with replicas under SIGSTOP/SIGCONT).
On the in-memory twins and the fake clocks of ``test_cluster``: no tick runs between the
clocks' jump and the slot."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from reconciler.core.runs import RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.store.base import RunQuery
from tests.controller.test_cluster import TASKS, Replica, World, settle
from tests.controller.test_policies import until
from tests.controller.test_reconcile import doc


async def _renewed_every_2s(world: World, replicas: list[Replica], *, until_second: int) -> None:
    """Every replica renews (and reconciles) every 2 s, from 12:00:30 to 12:00:``until_second``."""
    await settle(replicas)
    while world.clocks.now.second < until_second:
        world.clocks.advance(2)
        for replica in replicas:
            assert await replica.step()


def _finished(world: World, run: str) -> bool:
    record = world.store.get(run)
    return record is not None and record.status.finished


def test_a_slot_fired_past_the_renew_deadline_is_not_started_until_the_renewal(
    tmp_path: Path,
) -> None:
    """Stopped 11 s (past the 10 s renew deadline, within the 15 s lease): the 12:01:00 slots
    fired on SIGCONT are not started, nor claimed; a manual run is not either. The renewal then
    works (the tasks are still this replica's): the slots run as catch-ups."""
    world = World(tmp_path)
    slot = world.clocks.now.replace(second=0) + timedelta(minutes=1)
    action = ScriptedAction(auto=SUCCESS)

    async def main() -> None:
        (a,) = world.replicas("a")
        a.dispatcher.actions = Actions([action])
        await _renewed_every_2s(world, [a], until_second=56)
        world.clocks.advance(11)  # SIGSTOP ... SIGCONT at 12:01:07: no renewal ran since
        assert a.dispatcher.paused is None  # nobody has looked at the clock yet
        due = a.scheduler.advance(world.clocks.now)
        assert {at for _, at in due} == {slot}
        owned = a.scheduler.owned()
        fired = [a.dispatcher.fire(owned[key], at) for key, at in due]
        assert {(r.status, r.reason) for r in fired} == {(RunStatus.SKIPPED, "NotStarted")}
        assert a.dispatcher.paused is not None
        manual = a.dispatcher.fire_manual(owned["default/t00"])
        assert manual.reason == "NotStarted"
        assert a.dispatcher.active_count() == 0  # nothing decided, nothing claimed
        assert await a.step()  # renewed: the fence lifts, the slots not started catch up
        assert a.dispatcher.paused is None
        assert await a.dispatcher.drain(5)

    asyncio.run(main())
    records = world.store.query(RunQuery(limit=100)).items
    assert sorted(r.task for r in records) == [f"default/{name}" for name in TASKS]
    for record in records:
        assert (record.id, record.trigger, record.status) == (
            run_id(record.task, slot),
            Trigger.CATCHUP,
            RunStatus.SUCCEEDED,
        )


def test_a_slot_fired_past_the_lease_runs_on_the_replica_that_took_the_task(
    tmp_path: Path,
) -> None:
    """a is stopped 30 s: its record expires and b takes its tasks. On SIGCONT a's scheduler
    hands over the 12:01:00 slot of a task it still believes its own, before b's does. a must
    not claim it: b runs it, and a, renewed, does not run it again."""
    world = World(tmp_path)
    slot = world.clocks.now.replace(second=0) + timedelta(minutes=1)
    mine = ScriptedAction(auto=SUCCESS)

    async def main() -> str:
        a, b = world.replicas("a", "b")
        a.dispatcher.actions = Actions([mine])
        await settle([a, b])
        key = f"default/{sorted(a.owned())[0]}"
        for _ in range(15):  # a is stopped; b renews until 12:01:00 and takes a's tasks
            world.clocks.advance(2)
            assert await b.step()
        assert key in b.scheduler.owned()
        # SIGCONT: a's slot comes first, before any renewal of a.
        ((_, at),) = [(k, at) for k, at in a.scheduler.advance(world.clocks.now) if k == key]
        assert at == slot
        assert a.dispatcher.fire(a.scheduler.owned()[key], slot).reason == "NotStarted"
        ((_, at),) = [(k, at) for k, at in b.scheduler.advance(world.clocks.now) if k == key]
        b.dispatcher.fire(b.scheduler.owned()[key], at)
        assert await b.dispatcher.drain(5)
        # a renews: its membership had lapsed; the task comes back to it (same id), and its
        # catch-up of the slot not started is refused by the store (b ran it).
        assert await a.step()
        assert await a.dispatcher.drain(5)
        return key

    key = asyncio.run(main())
    assert mine.attempts == []
    record = world.store.get(run_id(key, slot))
    assert record is not None
    assert (record.owner, record.trigger, record.status) == (
        "b:1:b",
        Trigger.SCHEDULE,
        RunStatus.SUCCEEDED,
    )
    assert [r for r in world.store.query(RunQuery(limit=100)).items if r.owner == "a:1:a"] == []


def test_a_slot_handed_over_ahead_past_the_renew_deadline_waits_for_its_instant(
    tmp_path: Path,
) -> None:
    """Stopped 11.5 s, then a slot handed over 0.5 s ahead of it: a replica past its renew
    deadline neither decides nor claims it ahead; it is deferred to its instant (``due``).
    The renewal works before that instant, so the slot runs then, as scheduled. (Not started
    at once instead, it would be lost: the catch-up as the fence lifts stops at the present,
    before a slot still ahead.)"""
    world = World(tmp_path)
    slot = world.clocks.now.replace(second=0) + timedelta(minutes=1)
    key = "default/t00"
    (tmp_path / "t00.yaml").write_text(doc("t00", extra="  concurrencyPolicy: Forbid\n"))

    async def main() -> None:
        (a,) = world.replicas("a")
        await _renewed_every_2s(world, [a], until_second=48)
        # A first run here: the task is inherited no more (``handover.py``), and a slot of it
        # handed over ahead would be decided ahead (``AheadSlots._decidable_ahead``).
        a.dispatcher.fire_manual(a.scheduler.owned()[key])
        assert await a.dispatcher.drain(5)
        assert a.dispatcher.handover is not None
        assert not a.dispatcher.handover.inherited(key)
        world.clocks.advance(11.5)  # SIGSTOP ... SIGCONT at 12:00:59.5
        a.dispatcher.due(a.scheduler.owned()[key], slot)
        assert a.dispatcher.active(key) == []  # neither decided nor claimed ahead
        assert a.dispatcher.paused is not None
        assert await a.step()  # renewed: the fence lifts before the slot
        assert a.dispatcher.paused is None
        await until(lambda: _finished(world, run_id(key, slot)), timeout=10)
        assert await a.dispatcher.drain(5)

    asyncio.run(main())
    record = world.store.get(run_id(key, slot))
    assert record is not None
    assert (record.owner, record.trigger, record.status) == (
        "a:1:a",
        Trigger.SCHEDULE,
        RunStatus.SUCCEEDED,
    )


def test_a_task_resumed_by_a_pass_before_the_renewal_catches_up_its_slot(
    tmp_path: Path,
) -> None:
    """A task suspended over its 12:02 slot, resumed by an edit while its replica is stopped
    past the renew deadline: the pass that reads the edit comes before the renewal, and the
    catch-up it fires is not a scheduled slot; it runs (a catch-up held by the fence would be
    lost: the ledger has moved past it, and only scheduled slots are caught up again)."""
    world = World(tmp_path)
    key = "default/t00"
    suspended_slot = world.clocks.now.replace(second=0) + timedelta(minutes=2)

    async def main() -> None:
        (a,) = world.replicas("a")
        await _renewed_every_2s(world, [a], until_second=58)
        (tmp_path / "t00.yaml").write_text(doc("t00", extra="  suspend: true\n"))
        while world.clocks.now < suspended_slot - timedelta(seconds=4):
            world.clocks.advance(2)
            assert await a.step()
            for k, at in a.scheduler.advance(world.clocks.now):
                a.dispatcher.fire(a.scheduler.owned()[k], at)
        assert a.scheduler.owned()[key].task.spec.suspend
        (tmp_path / "t00.yaml").write_text(doc("t00"))
        world.clocks.advance(11)  # SIGSTOP 12:01:56 ... SIGCONT 12:02:07, no renewal since
        for k, at in a.scheduler.advance(world.clocks.now):  # the other tasks' 12:02 slots
            a.dispatcher.fire(a.scheduler.owned()[k], at)
        assert (await a.reconciler.run_pass(None)).ok  # the pass the edit asks for
        assert await a.cluster.tick()  # the renewal: the fence lifts
        assert await a.dispatcher.drain(5)

    asyncio.run(main())
    record = world.store.get(run_id(key, suspended_slot))
    assert record is not None
    assert (record.trigger, record.status) == (Trigger.CATCHUP, RunStatus.SUCCEEDED)


def test_the_catch_ups_as_the_fence_lifts_run_after_a_slow_renewal(tmp_path: Path) -> None:
    """The renewal that lifts the fence, and the store's housekeeping after it, take longer
    than the renew deadline: the catch-ups of the slots not started meanwhile still run (each
    looking at the fence's clock, measured from when that renewal began, lost them all)."""
    world = World(tmp_path)
    slot = world.clocks.now.replace(second=0) + timedelta(minutes=1)

    async def main() -> None:
        (a,) = world.replicas("a")
        await settle([a])
        world.registry.unreachable.add(a.id)
        world.clocks.advance(11)
        assert not await a.step()
        assert a.dispatcher.paused is not None
        world.clocks.advance(19)  # the slot comes due, fenced
        owned = a.scheduler.owned()
        due = a.scheduler.advance(world.clocks.now)
        assert {a.dispatcher.fire(owned[k], at).reason for k, at in due} == {"NotStarted"}
        world.clocks.advance(2)
        world.registry.unreachable.clear()
        housekeep = a.cluster._housekeep

        def slow(members: Any, here: Any) -> Any:  # the store answers, slowly
            world.clocks.advance(10.5)
            return housekeep(members, here)

        a.cluster._housekeep = slow  # type: ignore[method-assign]
        assert await a.cluster.tick()
        a.cluster._housekeep = housekeep  # type: ignore[method-assign]
        for _ in range(3):  # renewals on time after it
            world.clocks.advance(2)
            assert await a.step()
        await a.dispatcher.drain(5)

    asyncio.run(main())
    records = world.store.query(RunQuery(limit=100)).items
    assert sorted(r.task for r in records if r.id == run_id(r.task, slot)) == [
        f"default/{name}" for name in TASKS
    ]


def test_a_catch_up_on_a_replica_past_its_lease_is_left_to_the_new_owner(
    tmp_path: Path,
) -> None:
    """a is stopped 30 s, b takes its tasks. On SIGCONT a's first act is a pass that catches
    the 12:01 slot up (a task resumed): a must not claim it (b's claim of it would be refused,
    and a, fenced, would hand it over: the slot would run nowhere). b runs it."""
    world = World(tmp_path)
    slot = world.clocks.now.replace(second=0) + timedelta(minutes=1)
    mine, theirs = ScriptedAction(auto=SUCCESS), ScriptedAction(auto=SUCCESS)

    async def main() -> tuple[str, str]:
        a, b = world.replicas("a", "b")
        a.dispatcher.actions, b.dispatcher.actions = Actions([mine]), Actions([theirs])
        await settle([a, b])
        key = f"default/{sorted(a.owned())[0]}"
        for _ in range(15):  # a is stopped; b renews until 12:01:00 and takes a's tasks
            world.clocks.advance(2)
            assert await b.step()
        caught = a.dispatcher.fire(a.scheduler.owned()[key], slot, Trigger.CATCHUP)
        assert (caught.status, caught.reason) == (RunStatus.SKIPPED, "NotStarted")
        assert a.dispatcher.active_count() == 0
        ((_, at),) = [(k, at) for k, at in b.scheduler.advance(world.clocks.now) if k == key]
        b.dispatcher.fire(b.scheduler.owned()[key], at)
        assert await b.dispatcher.drain(5)
        return key, b.id

    key, b_id = asyncio.run(main())
    record = world.store.get(run_id(key, slot))
    assert record is not None
    assert (record.owner, record.status) == (b_id, RunStatus.SUCCEEDED)
    assert mine.attempts == []


def test_a_manual_run_on_a_replica_past_its_lease_stops_nothing_elsewhere(
    tmp_path: Path,
) -> None:
    """Under Replace, a manual run asked of a replica resumed past its lease (no renewal yet)
    is not started: claimed, it would have asked the task's new owner to stop its run, and
    then, fenced, not run itself."""
    world = World(tmp_path)
    for name in TASKS:
        (tmp_path / f"{name}.yaml").write_text(doc(name, extra="  concurrencyPolicy: Replace\n"))
    mine, theirs = ScriptedAction(auto=SUCCESS), ScriptedAction()  # b's runs until told

    async def main() -> None:
        a, b = world.replicas("a", "b")
        a.dispatcher.actions, b.dispatcher.actions = Actions([mine]), Actions([theirs])
        await settle([a, b])
        key = f"default/{sorted(a.owned())[0]}"
        for _ in range(15):
            world.clocks.advance(2)
            assert await b.step()
        ((_, at),) = [(k, at) for k, at in b.scheduler.advance(world.clocks.now) if k == key]
        b.dispatcher.fire(b.scheduler.owned()[key], at)
        await until(lambda: len(theirs.running()) == 1)
        manual = a.dispatcher.fire_manual(a.scheduler.owned()[key])
        assert (manual.status, manual.reason) == (RunStatus.SKIPPED, "NotStarted")
        assert a.dispatcher.active_count() == 0
        assert world.store.get(manual.id) is None  # nothing claimed, nothing asked of b
        assert [x.record.scheduled_at for x in theirs.running()] == [at]

    asyncio.run(main())
