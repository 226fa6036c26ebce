"""A replica back from a lapse reads its tasks' latest records in the store before it starts
runs again (``controller.lapse``). While that read fails, runs are held, and the log and the
paused reason say so (not "renewed; starting runs" at every renewal, nor the renew deadline's
reason); after a renew deadline's worth of failures it starts runs all the same, its missed
slots counted from its own memory, as before it knew of the lapse. On the in-memory twins and
the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

import pytest

from reconciler.controller.lapse import UNREAD, Lapse
from reconciler.runner.base import Actions
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.store.base import RunStore
from tests.controller.test_cluster import World, settle
from tests.controller.test_cluster_lapse_recount import a_task, records_of
from tests.controller.test_cluster_unchecked import cut_off, fire_due
from tests.controller.test_reconcile import doc

RESUMED = "membership renewed again; starting runs"


class Unread:
    """A replica's way to the store whose ``last_slots`` fails while ``failing``."""

    def __init__(self, store: Any) -> None:
        self.store, self.failing = store, True

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if name != "last_slots":
            return found

        def last_slots(*args: Any) -> Any:
            if self.failing:
                raise OSError("read failed")
            return found(*args)

        return last_slots


def test_runs_are_held_while_the_latest_records_cannot_be_read_then_start_from_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = a_task("every")
    (tmp_path / f"{name}.yaml").write_text(doc(name, "@every 2s"))
    world = World(tmp_path)
    paused: list[str | None] = []

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        a.dispatcher.actions = Actions([ScriptedAction(auto=SUCCESS)])
        world.clocks.advance(2)
        await fire_due(a, world)
        assert await a.dispatcher.drain(5)
        cut = cut_off(a, world)
        cut.down = True  # a's database and membership are gone; nobody takes its tasks
        world.registry.unreachable.add(a.id)
        for _ in range(4):
            world.clocks.advance(2)
            await fire_due(a, world)
            assert await a.dispatcher.drain(5)
        world.clocks.advance(12)  # past a's lease
        assert not await a.step()
        cut.down = False
        world.registry.unreachable.clear()
        unread = Unread(a.cluster.store)
        a.cluster.store = cast(RunStore, unread)
        await fire_due(a, world)
        caplog.clear()
        for _ in range(5):  # 0 .. 8 s of failed reads: less than the renew deadline (10 s)
            assert await a.step()
            paused.append(a.dispatcher.paused)
            world.clocks.advance(2)
            await fire_due(a, world)
        assert not [r for r in caplog.records if r.getMessage() == RESUMED]
        assert await a.step()  # 10 s: the renew deadline's worth of failed reads
        assert a.dispatcher.paused is None
        assert await a.dispatcher.drain(5)
        assert await a.dispatcher.recorder.flush(5)

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    assert paused == [UNREAD] * 5
    said = [r.getMessage() for r in caplog.records if r.name == "crontask.cluster"]
    assert said.count(RESUMED) == 1, said
    held = [m for m in said if m.startswith("could not read the tasks' last slots")]
    assert len(held) == 6, said
    assert all("runs are held" in m for m in held[:5]), held
    assert "starting runs, their missed slots counted from this replica's memory" in held[5]
    # Caught up from the ledger: the slots missed are recorded, the latest caught up.
    assert any(r.reason == "Superseded" for r in records_of(world, f"default/{name}"))


class _Refusing:
    def last_slots(self, keys: list[str]) -> dict[str, Any]:
        raise RuntimeError("store refused")


class _Dispatcher:
    """What ``Lapse`` asks of the dispatcher, no more."""

    def __init__(self) -> None:
        self.unstarted = {"default/a"}
        self.handover = None
        self.recorder = self

    def held(self) -> list[Any]:
        return []

    def drop_claiming(self, keys: Any, reason: str) -> None:
        pass

    def cancel_retries(self, key: str, reason: str) -> int:
        return 0


def test_each_lapse_gets_the_whole_renew_deadline_to_read() -> None:
    """A read that failed in an earlier lapse does not shorten a later one's patience: its
    first failure held runs at once, as the first lapse's did."""

    now = [0.0]
    lapse = Lapse(cast(Any, _Dispatcher()), lambda anchors: None, lambda: now[0], 6.0)

    async def main() -> None:
        lapse.hand_back(["default/a"])
        assert await lapse.anchors(cast(RunStore, _Refusing())) is None  # held
        now[0] = 100.0
        lapse.hand_back(["default/a"])  # a later lapse
        assert await lapse.anchors(cast(RunStore, _Refusing())) is None  # held again

    asyncio.run(main())
