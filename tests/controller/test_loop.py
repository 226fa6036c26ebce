"""The reconcile loop over real files: a failed pass loses neither the change it was asked to
read nor the downtime accounting of start-up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.loop import ReconcileLoop
from reconciler.controller.queue import WorkQueue
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.controller.test_reconcile import doc

T0 = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)


class Flaky(DirectorySource):
    """A folder source whose next ``failures`` refreshes raise (a disk error, say)."""

    failures = 0

    def refresh(self, hints: Collection[str] | None = None) -> set[str]:
        if self.failures:
            self.failures -= 1
            raise OSError("the disk hiccupped")
        return super().refresh(hints)


class World:
    def __init__(self, folder: Path, store: MemoryRunStore) -> None:
        self.source = Flaky([folder])
        self.store = store
        self.dispatcher = Dispatcher(
            store,
            owner="h:1:x",
            clock=lambda: T0,
            actions=Actions([ScriptedAction(auto=SUCCESS)]),
        )
        self.scheduler = MemoryScheduler(lambda key, at: None, T0)
        self.results: list[PassResult] = []
        self.reconciler = Reconciler(
            [self.source],
            self.scheduler,
            self.dispatcher,
            anchors=store.last_slots(),
            clock=lambda: T0,
        )
        self.reconciler.subscribe(self.results.append)
        self.queue = WorkQueue(base=0.01)
        self.loop = ReconcileLoop(self.reconciler, self.queue, resync_seconds=3600)
        self.stop = asyncio.Event()

    async def start(self) -> asyncio.Task[None]:
        ready = asyncio.Event()
        task = asyncio.ensure_future(self.loop.run(ready.set, self.stop))
        await asyncio.wait_for(ready.wait(), 5)
        return task

    async def until(self, check: Callable[[], bool], message: str) -> None:
        deadline = asyncio.get_running_loop().time() + 5
        while not check():
            assert asyncio.get_running_loop().time() < deadline, message
            await asyncio.sleep(0.005)


def test_a_failed_pass_puts_its_change_back_on_the_queue(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("a"))

    async def main() -> None:
        world = World(tmp_path, MemoryRunStore())
        running = await world.start()
        assert set(world.scheduler.owned()) == {"default/a"}
        path = tmp_path / "b.yaml"
        path.write_text(doc("b"))
        world.source.failures = 2
        world.queue.add("file", {str(path.absolute())})
        # No resync for an hour: only the requeued change can bring b in.
        await world.until(lambda: "default/b" in world.scheduler.owned(), "b was never applied")
        assert [r.ok for r in world.results[1:]] == [False, False, True]
        assert world.queue.failures == 0
        world.stop.set()
        await running

    asyncio.run(main())


def test_a_failed_first_pass_keeps_the_downtime_accounting(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("a"))
    store = MemoryRunStore()
    before = T0 - timedelta(minutes=10, seconds=30)  # the last slot run before the downtime
    store.claim(
        RunRecord(
            id=run_id("default/a", before),
            task="default/a",
            scheduled_at=before,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.SUCCEEDED,
            started_at=before,
            finished_at=before,
        )
    )

    async def main() -> None:
        world = World(tmp_path, store)
        world.source.failures = 1
        running = await world.start()
        assert not world.results[0].ok
        await world.until(lambda: any(r.ok for r in world.results), "no pass succeeded")
        assert await world.dispatcher.drain(5)
        world.stop.set()
        await running
        await world.dispatcher.shutdown(0)

    asyncio.run(main())
    records = sorted(
        store.query(RunQuery(task="default/a", limit=100)).items, key=lambda r: r.scheduled_at
    )
    latest = T0.replace(second=0)
    assert [(r.scheduled_at, r.status, r.trigger, r.reason) for r in records] == [
        (before, RunStatus.SUCCEEDED, Trigger.SCHEDULE, None),
        (latest - timedelta(minutes=1), RunStatus.SKIPPED, Trigger.SCHEDULE, "Superseded"),
        (latest, RunStatus.SUCCEEDED, Trigger.CATCHUP, None),
    ]
