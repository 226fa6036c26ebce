"""Dead replicas' runs: every replica that leaves the live members has its runs marked
``interrupted``, whether it was draining when it died, and however many renewals the store
fails meanwhile. Left ``running``, they would make the new owner skip a Forbid task for ever."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore
from reconciler.store.base import StoreUnavailable
from tests.controller.test_cluster import T0, World, settle


class Hiccups(MemoryRunStore):
    """A run store whose next ``failures`` sweeps fail, as a connection reset would."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def mark_interrupted(
        self,
        owners: Collection[str],
        now: datetime,
        *,
        keep: Collection[str] = (),
        note: str = "",
    ) -> list[RunRecord]:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("connection reset")
        return super().mark_interrupted(owners, now, keep=keep, note=note)


def running_run(world: World, task: str, owner: str) -> str:
    """A run of ``task`` running on ``owner``; its id."""
    slot = T0 - timedelta(seconds=30)
    world.store.claim(
        RunRecord(
            id=run_id(f"default/{task}", slot),
            task=f"default/{task}",
            scheduled_at=slot,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.RUNNING,
            started_at=slot,
            owner=owner,
        )
    )
    return run_id(f"default/{task}", slot)


def status(world: World, run: str) -> RunStatus:
    record = world.store.get(run)
    assert record is not None
    return record.status


def test_a_replica_killed_while_draining_has_its_runs_marked(tmp_path: Path) -> None:
    """SIGTERM, then kill -9 within the shutdown grace (a pod's grace period): the replica
    left the members tasks are assigned over when it began draining, alive; it leaves the
    live members only when its record expires, and its runs are marked then."""

    async def main() -> None:
        world = World(tmp_path)
        a, b, c = world.replicas("a", "b", "c")
        await settle([a, b, c])
        run = running_run(world, sorted(c.owned())[0], c.id)
        c.stopping.set()
        await c.step()  # announces draining; its run goes on
        await settle([a, b])
        assert status(world, run) is RunStatus.RUNNING  # a draining replica is alive
        for _ in range(8):  # c is killed: it renews no more, and its record expires
            world.clocks.advance(2)
            await settle([a, b])
        assert c.id not in {m.id for m in a.cluster.members}
        assert status(world, run) is RunStatus.INTERRUPTED

    asyncio.run(main())


def test_a_sweep_the_store_failed_is_tried_again(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        world.store = store = Hiccups()
        a, b, c = world.replicas("a", "b", "c")
        await settle([a, b, c])
        run = running_run(world, sorted(c.owned())[0], c.id)
        store.failures = 2  # the renewals of a and b that first see c gone
        for _ in range(8):  # c is killed
            world.clocks.advance(2)
            await settle([a, b])
        assert store.failures == 0
        assert status(world, run) is RunStatus.INTERRUPTED

    asyncio.run(main())


def test_the_run_of_a_replica_not_seen_leaving_is_left_alone(tmp_path: Path) -> None:
    """A replica that joins after another's renewal read the member list may claim a run
    before that replica looks at the running ones: that run is no dead replica's. After the
    first sweep, only the owners seen leaving the live members are looked at."""

    async def main() -> None:
        world = World(tmp_path)
        (a,) = world.replicas("a")
        await settle([a])
        run = running_run(world, "t00", "d:1:d")  # d has renewed since a did, not before
        world.clocks.advance(2)
        await a.step()
        assert status(world, run) is RunStatus.RUNNING

    asyncio.run(main())
