"""A replica cut off from the run store cannot check its claims: a slot of its own due then is
not run there (the replica that takes its tasks over would run it too), but caught up once, by
whoever owns the task when the store answers. Without replicas it runs anyway. On the
in-memory twins and the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunStore, StoreUnavailable
from tests.controller.test_cluster import T0, Replica, World, settle
from tests.controller.test_policies import KEY, task, until

SLOT = T0.replace(second=0) + timedelta(minutes=1)  # 12:01


class Cut:
    """One replica's way to the shared store: while ``down`` (its connections lost), every
    call raises StoreUnavailable, as the SQL store's do; the other replicas reach it."""

    def __init__(self, store: MemoryRunStore) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if not self.down or not callable(found):
            return found

        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("connection refused")

        return unavailable


def cut_off(replica: Replica, world: World) -> Cut:
    """``replica`` reaches the store through a Cut from now on."""
    cut = Cut(world.store)
    store = cast(RunStore, cut)
    replica.dispatcher.recorder.store = store
    replica.cluster.store = store
    assert replica.dispatcher.handover is not None
    replica.dispatcher.handover.store = store
    return cut


async def fire_due(replica: Replica, world: World) -> None:
    for key, at in replica.scheduler.advance(world.clocks.now):
        replica.dispatcher.fire(replica.scheduler.owned()[key], at)


def slot_records(world: World, names: list[str]) -> set[tuple[Any, ...]]:
    """How the 12:01 slot of each of ``names`` is recorded (each task's attempts alike)."""
    return {
        tuple((r.attempt, r.trigger, r.status, r.owner) for r in world.store.attempts(slot_id))
        for slot_id in (run_id(f"default/{name}", SLOT) for name in names)
    }


def test_a_slot_whose_claim_cannot_be_checked_runs_once_on_the_new_owner(
    tmp_path: Path,
) -> None:
    """a loses the database (its membership rows are there too): the slot due then is not
    started on a; b takes a's tasks once a's lease has run out and catches the slot up; when a
    is back, the slot does not run a second time."""
    world = World(tmp_path)
    lost: list[str] = []

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        lost.extend(sorted(a.owned()))
        action = ScriptedAction(auto=SUCCESS)
        a.dispatcher.actions = Actions([action])
        cut = cut_off(a, world)
        world.clocks.advance(29)  # 12:00:59
        await a.step()
        await b.step()
        world.clocks.advance(1)  # 12:01:00: the slot, a cut off just before it
        cut.down = True
        world.registry.unreachable.add(a.id)
        await fire_due(a, world)
        assert await a.dispatcher.drain(5)
        assert action.attempts == []  # not started on a
        assert a.dispatcher.recorder.pending == 0  # and nothing of it waits to be written
        world.clocks.advance(16)  # 12:01:16: a's lease has run out
        await fire_due(b, world)
        await b.step()
        assert set(lost) <= b.owned()
        assert await b.dispatcher.drain(5)
        # a is back: it takes its tasks again, and looks at the slots it did not start.
        cut.down = False
        world.registry.unreachable.clear()
        for replica in (a, b, a):
            await replica.step()
        assert set(lost) <= a.owned()
        assert await a.dispatcher.drain(5)
        assert action.attempts == []  # the slot ran on b: a's claim of it is refused

    asyncio.run(main())
    assert lost
    assert slot_records(world, lost) == {((1, Trigger.CATCHUP, RunStatus.SUCCEEDED, "b:1:b"),)}


def test_a_slot_not_started_for_a_short_outage_is_caught_up_by_its_owner(tmp_path: Path) -> None:
    """The store is back before anything moved: the owner catches the slot up itself."""
    world = World(tmp_path)
    mine: list[str] = []

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        mine.extend(sorted(a.owned()))
        action = ScriptedAction(auto=SUCCESS)
        a.dispatcher.actions = Actions([action])
        cut = cut_off(a, world)
        world.clocks.advance(29)  # 12:00:59
        await a.step()
        await b.step()
        world.clocks.advance(1)  # 12:01:00
        cut.down = True
        await fire_due(a, world)
        assert await a.dispatcher.drain(5)
        assert action.attempts == []
        world.clocks.advance(2)
        cut.down = False
        assert await a.step()  # its housekeeping reads the store: it answers again
        assert a.dispatcher.paused is None
        assert set(mine) == a.owned()  # nothing moved
        assert await a.dispatcher.drain(5)
        assert len(action.attempts) == len(mine)

    asyncio.run(main())
    assert mine
    assert slot_records(world, mine) == {((1, Trigger.CATCHUP, RunStatus.SUCCEEDED, "a:1:a"),)}


class Down(MemoryRunStore):
    """Every claim raises StoreUnavailable while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def claim_many(self, records: Any) -> list[bool]:
        if self.down:
            raise StoreUnavailable("connection refused")
        return super().claim_many(records)

    def claim(self, record: RunRecord) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")
        super().claim(record)


def test_without_replicas_a_slot_whose_claim_cannot_be_checked_runs_anyway() -> None:
    """Nobody else can run it: it runs, and its records are written when the store is back."""
    store = Down()

    async def main() -> None:
        action = ScriptedAction(auto=SUCCESS)
        recorder = Recorder(store, retry_initial=0.01)
        d = Dispatcher(store, owner="h:1:x", clock=lambda: SLOT, actions=Actions([action]))
        d.recorder = recorder
        d.fire(task(), SLOT)
        await until(lambda: len(action.attempts) == 1)
        assert await d.drain(5)
        store.down = False
        assert await recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())
    record = store.get(run_id(KEY, SLOT))
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED


def test_a_claim_not_to_be_kept_leaves_nothing_to_write() -> None:
    store = Down()
    at = datetime(2026, 11, 30, 12, 1, tzinfo=SLOT.tzinfo)
    kept = RunRecord(run_id(KEY, at), KEY, at, Trigger.SCHEDULE, RunStatus.RUNNING)
    dropped = RunRecord(
        run_id("default/other", at), "default/other", at, Trigger.SCHEDULE, RunStatus.RUNNING
    )

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01)
        answers = [recorder.claim_soon(kept), recorder.claim_soon(dropped, keep=False)]
        assert await asyncio.gather(*answers) == [False, False]
        assert recorder.pending == 1
        store.down = False
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    assert store.get(kept.id) is not None
    assert store.get(dropped.id) is None
