"""A replica taking tasks over reads the last recorded slots of the tasks it owns now, each at
the end of its history (``RunStore.last_slots(tasks)``), not every task's whole history: that
read held up the new assignment, a second at a million runs, while the tasks coming to it were
scheduled by nobody. While joining, before any pass has read the sources, it reads every task's,
as at start-up. On the in-memory twins and the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.core.runs import RunStatus, Trigger
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.controller.test_cluster import T0, World, settle
from tests.store._records import rec


class AskedStore(MemoryRunStore):
    """Says which tasks each ``last_slots`` asked for (None: every task)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[frozenset[str] | None] = []

    def last_slots(self, tasks: Collection[str] | None = None) -> dict[str, datetime]:
        self.asked.append(None if tasks is None else frozenset(tasks))
        return super().last_slots() if tasks is None else super().last_slots(tasks)

    def mark_tracked(self, since: Mapping[str, datetime]) -> None:
        """Not kept: b takes its tasks with no slot on record, and marks them (12:00:30); the
        history the test writes after that stands for one recorded before b took them."""


def test_a_replica_reads_the_last_slots_of_the_tasks_it_takes_over_only(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        store = world.store = AskedStore()
        a, b = world.replicas("a", "b")
        assert await a.cluster.tick()  # joining: nothing read yet
        assert store.asked == [None]
        await settle([a, b])
        # b joined: a's tasks are split, and a asked for those it keeps.
        assert store.asked[-1] == frozenset(f"default/{key}" for key in a.owned())
        lost = sorted(b.owned())
        assert lost
        assert a.owned()
        # b's tasks ran a slot at 11:55, then a manual run (no slot) at 11:58.
        slot = T0.replace(second=0) - timedelta(minutes=5)
        manual = slot + timedelta(minutes=3)
        store.save_many(
            [
                record
                for key in lost
                for record in (
                    rec(f"default/{key}", slot, owner=b.id),
                    rec(f"default/{key}", manual, owner=b.id, trigger=Trigger.MANUAL),
                )
            ]
        )
        del store.asked[:]
        world.clocks.advance(16)  # b renews no more: expired
        await a.step()
        assert store.asked == [frozenset(f"default/{key}" for key in a.owned())]
        assert set(lost) <= a.owned()
        await a.dispatcher.drain(5)
        # Each caught up the gap from its last slot (11:55), not from the manual run.
        for key in lost:
            runs = store.query(RunQuery(task=f"default/{key}", limit=100)).items
            assert [(r.scheduled_at, r.trigger, r.status) for r in runs[:2]] == [
                (slot + timedelta(minutes=5), Trigger.CATCHUP, RunStatus.SUCCEEDED),
                (slot + timedelta(minutes=4), Trigger.SCHEDULE, RunStatus.SKIPPED),
            ]

    asyncio.run(main())
