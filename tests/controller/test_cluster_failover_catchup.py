"""The catch-up after a failover is not skipped for the dead replica's run.

A replica killed (``kill -9``) during a run of a Forbid task leaves that run ``running``. When its
record expires, the task's new owner both takes the task (whose pass catches up the latest slot
missed in the gap) and marks the dead replica's runs ``interrupted``. The pass runs as soon as
the new assignment is given (the reconcile loop wakes on it), concurrently with the rest of the
renewal: if the runs were marked after the assignment, the catch-up's claim could see the dead
run still ``running`` and be skipped ConcurrencyForbid, and the slot never ran (found by a chaos
test of replicas on PostgreSQL: 1 failover in 5).

Here the reconcile loop is modelled by a queue whose resync starts a pass at once, and the store
makes the race certain rather than likely: a marking that comes after a new assignment waits
until the catch-up's claim has been answered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.controller.reconcile import PassResult
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore
from reconciler.store.base import ExclusiveClaim
from tests.controller.test_cluster import T0, Replica, World
from tests.controller.test_reconcile import doc

TASK = "t00"
KEY = f"default/{TASK}"
DEADLINE = 10.0  # seconds a marking waits for a claim that the code under test never makes


class Racing(MemoryRunStore):
    """Marks dead replicas' runs only once the catch-up of ``KEY`` was claimed, if the marking
    comes after a new assignment (``assigned``) gave the task to its new owner."""

    def __init__(self) -> None:
        super().__init__()
        self.assigned = threading.Event()
        self.claimed = threading.Event()

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        answers = super().claim_exclusive(records)
        if any(r.task == KEY and r.trigger is Trigger.CATCHUP for r in records):
            self.claimed.set()
        return answers

    def mark_interrupted(
        self,
        owners: Collection[str],
        now: datetime,
        *,
        keep: Collection[str] = (),
        note: str = "",
    ) -> list[RunRecord]:
        if self.assigned.is_set():
            self.claimed.wait(DEADLINE)
        return super().mark_interrupted(owners, now, keep=keep, note=note)


class Loop:
    """The reconcile loop's part: a resync asked by a renewal starts a pass at once."""

    def __init__(self, replica: Replica, store: Racing) -> None:
        self.replica = replica
        self.store = store
        self.passes: list[asyncio.Task[PassResult]] = []

    def add_resync(self) -> None:
        self.store.assigned.set()
        self.passes.append(asyncio.ensure_future(self.replica.reconciler.run_pass(None)))


async def step(replica: Replica, loop: Loop, now: datetime) -> None:
    """The slots due fire, then a renewal (and the pass it starts), then a full pass."""
    for key, at in replica.scheduler.advance(now):
        replica.dispatcher.fire(replica.scheduler.owned()[key], at)
    await replica.cluster.tick()
    while loop.passes:
        started = await loop.passes.pop()
        assert started.ok, started.error
    result = await replica.reconciler.run_pass(None)
    assert result.ok, result.error


def test_the_catch_up_after_a_failover_runs_though_the_dead_replica_was_running(
    tmp_path: Path,
) -> None:
    slot = T0.replace(second=0) + timedelta(minutes=1)  # missed while its owner was dead
    world = World(tmp_path)
    world.store = store = Racing()
    (tmp_path / f"{TASK}.yaml").write_text(doc(TASK, extra="  concurrencyPolicy: Forbid\n"))

    async def main() -> None:
        replicas = world.replicas("a", "b")
        loops = {r.id: Loop(r, store) for r in replicas}
        for replica in replicas:
            replica.cluster.queue = loops[replica.id]  # type: ignore[assignment]
        for _ in range(10):  # 20 s together: the owner renews last 10 s before the slot
            world.clocks.advance(2)
            for replica in replicas:
                await step(replica, loops[replica.id], world.clocks.now)
        store.assigned.clear()
        (dead,) = [r for r in replicas if TASK in r.owned()]
        (alive,) = [r for r in replicas if r is not dead]
        before = T0.replace(second=0)
        store.claim(
            RunRecord(
                id=run_id(KEY, before),
                task=KEY,
                scheduled_at=before,
                trigger=Trigger.SCHEDULE,
                status=RunStatus.RUNNING,
                started_at=before,
                owner=dead.id,
            )
        )
        for _ in range(10):  # the owner is killed during that run; its record expires
            world.clocks.advance(2)
            await step(alive, loops[alive.id], world.clocks.now)
        assert dead.id not in {m.id for m in alive.cluster.members}
        assert TASK in alive.owned()
        assert await alive.dispatcher.drain(5)

    asyncio.run(main())
    interrupted = world.store.get(run_id(KEY, T0.replace(second=0)))
    assert interrupted is not None
    assert interrupted.status is RunStatus.INTERRUPTED
    caught_up = world.store.get(run_id(KEY, slot))
    assert caught_up is not None
    assert (caught_up.trigger, caught_up.status, caught_up.reason) == (
        Trigger.CATCHUP,
        RunStatus.SUCCEEDED,
        None,
    )
