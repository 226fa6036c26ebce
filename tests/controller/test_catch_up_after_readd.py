"""A start catches up from where crontask was counting a task's slots: the later of its newest
recorded slot and when it was last added without catching anything up (``RunStore.mark_tracked``).

A task removed and declared again while crontask ran catches up, at the next start, no slot that
fell while it was not declared (a CronJob deleted and created again runs no slot from before
it); a task first declared while crontask ran, or found at a start with nothing in the store,
whose first slot falls while crontask is down, catches that slot up; and a task with runs still
catches up the slot missed after its last one. crontask over a folder on a fake clock, its runs
in a real SQLite file that each start opens again, as ``crontask run`` does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.store import sqlite_url
from reconciler.store.base import RunQuery, StoreUnavailable
from reconciler.store.sql import SqlRunStore
from tests.controller.test_reconcile import T0, doc
from tests.helpers import local_actions

HOURLY = "0 * * * *"  # T0 is 12:00:30: the first slot is 13:00


class Counting(SqlRunStore):
    """The SQLite store, counting its ``mark_tracked`` writes; the next ``failing`` of them
    fail as an outage would (nothing written)."""

    marks: list[int]
    failing: int

    def mark_tracked(self, since: Mapping[str, datetime]) -> None:
        self.marks.append(len(since))
        if self.failing:
            self.failing -= 1
            raise StoreUnavailable("run store unavailable: database is locked")
        super().mark_tracked(since)


class World:
    """One crontask over ``folder/tasks``, its store the file ``folder/state``. ``anchored``: a
    start, as ``crontask run`` makes it (the store's ``last_slots`` are its anchors)."""

    def __init__(self, folder: Path, now: datetime) -> None:
        self.folder, self.now = folder, now
        store = Counting.open(sqlite_url(folder / "state"), writer=True)
        assert isinstance(store, Counting)  # ``open`` makes its class's store
        store.marks, store.failing = [], 0
        self.store = store
        self.dispatcher = Dispatcher(
            self.store, owner="h:1:x", clock=lambda: self.now, actions=local_actions()
        )
        self.scheduler = MemoryScheduler(self.on_fire, now)
        self.reconciler = Reconciler(
            [DirectorySource([folder / "tasks"])],
            self.scheduler,
            self.dispatcher,
            clock=lambda: self.now,
            anchors=self.store.last_slots(),
        )

    def on_fire(self, key: str, at: datetime) -> None:
        self.dispatcher.fire(self.scheduler.owned()[key], at)

    def declare(self, name: str = "job", schedule: str = HOURLY) -> None:
        (self.folder / "tasks" / f"{name}.yaml").write_text(doc(name, schedule))

    def remove(self, name: str = "job") -> None:
        (self.folder / "tasks" / f"{name}.yaml").unlink()

    async def reconcile(self) -> None:
        self.reconciler.refresh(None)
        assert self.reconciler.apply(None).ok
        assert await self.dispatcher.drain(10)

    async def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.scheduler.advance(self.now)
        assert await self.dispatcher.drain(10)

    async def stop(self) -> None:
        await self.dispatcher.shutdown(0)
        self.store.close()

    async def restart(self, down: float) -> World:
        """Stopped now, started again ``down`` seconds later, its first pass applied."""
        await self.stop()
        world = World(self.folder, self.now + timedelta(seconds=down))
        await world.reconcile()
        return world

    def runs(self, key: str = "default/job") -> list[tuple[str, str, str | None]]:
        items = self.store.query(RunQuery(task=key, limit=1000)).items
        return [
            (r.scheduled_at.strftime("%H:%M"), str(r.trigger), r.reason)
            for r in sorted(items, key=lambda r: r.scheduled_at)
        ]


def play(tmp_path: Path, body: Callable[[World], Coroutine[Any, Any, World]]) -> World:
    async def main() -> World:
        (tmp_path / "tasks").mkdir()
        world = await body(World(tmp_path, T0))
        await world.stop()
        return world

    return asyncio.run(main())


def test_a_slot_that_fell_while_the_task_was_removed_is_not_caught_up_at_the_next_start(
    tmp_path: Path,
) -> None:
    async def body(w: World) -> World:
        w.declare("other", "0 0 1 1 *")  # so that removing ``job`` leaves no source empty
        w.declare()
        await w.reconcile()
        await w.advance(3600)  # 13:00 runs
        await w.advance(1800)
        w.remove()  # 13:30: removed, crontask running
        await w.reconcile()
        await w.advance(3600)  # 14:00 falls: the task is not declared
        w.declare()  # 14:30: declared again
        await w.reconcile()
        w = await w.restart(down=600)  # 14:40, before the next slot (15:00)
        await w.advance(0)
        assert w.runs() == [("13:00", "schedule", None)]  # no catch-up of 14:00
        await w.advance(20 * 60)
        assert w.runs() == [("13:00", "schedule", None), ("15:00", "schedule", None)]
        return w

    play(tmp_path, body)


def test_the_first_slot_of_a_task_added_while_running_is_caught_up_after_downtime(
    tmp_path: Path,
) -> None:
    async def body(w: World) -> World:
        w.declare("other", "0 0 1 1 *")
        await w.reconcile()
        await w.advance(600)
        w.declare()  # 12:10:30: added while crontask runs; it has never run
        await w.reconcile()
        await w.advance(1200)
        w = await w.restart(down=2700)  # down from 12:30:30 to 13:15:30, across 13:00
        await w.advance(0)
        assert w.runs() == [("13:00", "catchup", None)]
        return w

    play(tmp_path, body)


def test_the_first_slot_of_a_task_found_at_a_start_without_runs_is_caught_up_after_downtime(
    tmp_path: Path,
) -> None:
    async def body(w: World) -> World:
        w.declare()
        await w.reconcile()  # 12:00:30, the first start: nothing in the store of the task
        assert w.store.marks == [1]
        w = await w.restart(down=3600)  # down from 12:00:30 to 13:00:30, across 13:00
        await w.advance(0)
        assert w.runs() == [("13:00", "catchup", None)]
        return w

    play(tmp_path, body)


def test_a_task_with_runs_still_catches_up_the_slot_missed_after_its_last_one(
    tmp_path: Path,
) -> None:
    async def body(w: World) -> World:
        w.declare()
        await w.reconcile()
        await w.advance(3600 + 1800)  # 13:00 runs; 13:30:30
        w = await w.restart(down=2 * 3600)  # down until 15:30:30: 14:00 and 15:00 missed
        await w.advance(0)
        assert w.runs() == [
            ("13:00", "schedule", None),
            ("14:00", "schedule", "Superseded"),
            ("15:00", "catchup", None),
        ]
        assert w.store.marks == []  # it had an anchor: nothing to write at this start
        return w

    play(tmp_path, body)


def test_the_tasks_one_pass_adds_are_marked_in_one_write(tmp_path: Path) -> None:
    async def body(w: World) -> World:
        for n in range(300):
            w.declare(f"t{n:03}")
        await w.reconcile()  # the first start: none has a run
        await w.advance(60)
        for n in range(300, 500):
            w.declare(f"t{n:03}")
        await w.reconcile()  # added while running
        await w.advance(60)
        w.declare("job")  # a resync that adds nothing writes nothing
        await w.reconcile()
        await w.reconcile()
        assert w.store.marks == [300, 200, 1]
        marks = w.store.last_slots()
        assert len(marks) == 501
        assert marks["default/t000"] == T0
        assert marks["default/t300"] == T0 + timedelta(seconds=60)
        return w

    play(tmp_path, body)


def test_a_mark_whose_write_failed_goes_with_the_next_passs_marks(tmp_path: Path) -> None:
    async def body(w: World) -> World:
        w.declare("other", "0 0 1 1 *")
        w.declare()
        await w.reconcile()
        await w.advance(3600)  # 13:00 runs
        await w.advance(600)
        w.remove()  # 13:10:30: removed, crontask running
        await w.reconcile()
        await w.advance(3600)  # 14:00 falls: the task is not declared
        w.store.failing = 1  # the store is out when it is declared again
        w.declare()  # 14:10:30
        await w.reconcile()
        await w.advance(60)
        await w.reconcile()  # 14:11:30: a pass that adds nothing sends the mark again
        assert w.store.marks == [2, 1, 1]  # the first start, the failed write, again
        w = await w.restart(down=600)  # 14:21:30, before the next slot (15:00)
        await w.advance(0)
        assert w.runs() == [("13:00", "schedule", None)]  # no catch-up of 14:00
        return w

    play(tmp_path, body)
