"""A task that moves to this replica from one gone, with no slot on record but with a mark
(``RunStore.mark_tracked``: the gone replica began counting its slots then): the handover counts
its gap from the mark, as a start does, not from the gone replica's last renewal, so a slot that
replica neither ran nor recorded after the mark is caught up. A task without a mark (written by
a release before it, or lost) still counts from that renewal (``test_cluster_gap``). On the
in-memory twins and the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.core.runs import RunStatus, Trigger
from reconciler.store import MemoryRunStore
from tests.controller.test_cluster import T0, World, settle
from tests.controller.test_cluster_gap import _fire_due, _slot_runs


class Unmarked(MemoryRunStore):
    """Keeps no mark: the handover has only the gone replica's renewal to count from."""

    def mark_tracked(self, since: Mapping[str, datetime]) -> None:
        pass


async def _gap_after_a_slot_the_gone_replica_did_not_start(
    world: World,
) -> tuple[list[str], list[str]]:
    """a and b renew until 12:01:10, b starting its 12:01 slots, a not (stuck): a then dies,
    and b takes a's tasks at 12:01:30. a's tasks, and those that ran 12:01 as a catch-up."""
    a, b = world.replicas("a", "b")
    await settle([a, b])  # 12:00:30: each marks the tasks it takes (none ran)
    lost = sorted(a.owned())
    assert lost
    for _ in range(20):  # renewing every 2 s: a jump with no renewal would fence them
        world.clocks.advance(2)
        for replica in (a, b):
            assert await replica.cluster.tick()
    await _fire_due(b, world)  # 12:01:10
    world.clocks.advance(20)  # a's lease (15 s) has run out
    await b.step()
    assert set(lost) <= b.owned()
    await b.dispatcher.drain(5)
    slot = T0.replace(second=0) + timedelta(minutes=1)
    caught = _slot_runs(world, lost, slot)
    assert set(caught.values()) <= {(Trigger.CATCHUP, RunStatus.SUCCEEDED)}
    return lost, sorted(caught)


def test_a_handover_counts_a_never_run_tasks_gap_from_its_mark(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        lost, caught = await _gap_after_a_slot_the_gone_replica_did_not_start(world)
        assert caught == lost

    asyncio.run(main())


def test_without_a_mark_the_gap_counts_from_the_gone_replicas_last_renewal(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        world = World(tmp_path)
        world.store = Unmarked()
        _, caught = await _gap_after_a_slot_the_gone_replica_did_not_start(world)
        assert caught == []

    asyncio.run(main())
