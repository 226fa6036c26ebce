"""The catch-up rules hold whatever came between: a resume catches up the latest slot missed
while suspended after an edit made while suspended, and after a restart while suspended, as
after a plain suspend and resume; a schedule edit means the same seen live or at the start
after crontask was down. Slots count from the task's last slot (a CronJob's
``lastScheduleTime``), never from the moment a change was seen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.controller.test_reconcile import T0, doc
from tests.helpers import local_actions

HOURLY = "0 * * * *"
SUSPENDED = "  suspend: true\n"
OTHER = "  successfulRunsHistoryLimit: 5\n"  # an edit that changes nothing about slots


class World:
    """crontask over a folder on a fake clock; ``restart`` starts a new one on the same store
    and folder, as ``crontask run`` does: anchored at the store's last recorded slots."""

    def __init__(self, folder: Path, store: MemoryRunStore, now: datetime, anchored: bool) -> None:
        self.folder, self.store, self.now = folder, store, now
        self.dispatcher = Dispatcher(
            store, owner="h:1:x", clock=lambda: self.now, actions=local_actions()
        )
        self.scheduler = MemoryScheduler(self.on_fire, now)
        self.reconciler = Reconciler(
            [DirectorySource([folder])],
            self.scheduler,
            self.dispatcher,
            clock=lambda: self.now,
            anchors=store.last_slots() if anchored else None,
        )

    def on_fire(self, key: str, at: datetime) -> None:
        self.dispatcher.fire(self.scheduler.owned()[key], at)

    def write(self, schedule: str = HOURLY, extra: str = "") -> None:
        (self.folder / "a.yaml").write_text(doc("job", schedule, extra))

    def reconcile(self) -> None:
        self.reconciler.refresh(None)
        self.reconciler.apply(None)

    async def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.scheduler.advance(self.now)
        assert await self.dispatcher.drain(10)

    async def restart(self, down: float = 0.0) -> World:
        await self.dispatcher.shutdown(0)
        return World(self.folder, self.store, self.now + timedelta(seconds=down), anchored=True)

    def runs(self) -> list[tuple[str, str, str | None]]:
        items = self.store.query(RunQuery(task="default/job", limit=1000)).items
        return [
            (r.scheduled_at.strftime("%H:%M"), str(r.trigger), r.reason)
            for r in sorted(items, key=lambda r: r.scheduled_at)
        ]


def play(tmp_path: Path, body: Callable[[World], Coroutine[Any, Any, World]]) -> World:
    async def main() -> World:
        world = await body(World(tmp_path, MemoryRunStore(), T0, anchored=False))
        await world.dispatcher.shutdown(0)
        return world

    return asyncio.run(main())


async def suspended_at_13_10(w: World) -> None:
    """12:00:30: an hourly task; 13:00 runs; suspended at 13:10, still so at 14:10."""
    w.write()
    w.reconcile()
    await w.advance(3600 + 600)
    w.write(extra=SUSPENDED)
    w.reconcile()
    await w.advance(3600)  # 14:00 falls while suspended


RESUMED = [("13:00", "schedule", None), ("14:00", "catchup", None)]


def test_resume_catches_up_the_latest_slot_missed_while_suspended(tmp_path: Path) -> None:
    async def body(w: World) -> World:
        await suspended_at_13_10(w)
        w.write()
        w.reconcile()
        await w.advance(0)
        return w

    assert play(tmp_path, body).runs() == RESUMED


def test_an_edit_while_suspended_keeps_the_catch_up(tmp_path: Path) -> None:
    async def body(w: World) -> World:
        await suspended_at_13_10(w)
        w.write(extra=SUSPENDED + OTHER)  # still suspended
        w.reconcile()
        await w.advance(600)
        w.write(extra=OTHER)
        w.reconcile()
        await w.advance(0)
        return w

    assert play(tmp_path, body).runs() == RESUMED


def test_a_restart_while_suspended_keeps_the_catch_up(tmp_path: Path) -> None:
    async def body(w: World) -> World:
        await suspended_at_13_10(w)
        w = await w.restart(down=600)  # at 14:20, still suspended
        w.reconcile()
        await w.advance(600)
        w.write()
        w.reconcile()
        await w.advance(0)
        return w

    assert play(tmp_path, body).runs() == RESUMED


def test_an_edit_that_keeps_the_schedule_catches_up_nothing(tmp_path: Path) -> None:
    async def body(w: World) -> World:
        w.write()
        w.reconcile()
        await w.advance(3600 + 600)  # 13:00 runs; 13:10:30
        w.write(extra=OTHER)
        w.reconcile()
        await w.advance(0)
        assert w.runs() == [("13:00", "schedule", None)]
        await w.advance(3000)
        return w

    assert play(tmp_path, body).runs() == [("13:00", "schedule", None), ("14:00", "schedule", None)]


@pytest.mark.parametrize("seen", ["live", "after a restart"])
def test_a_schedule_edit_means_the_same_live_and_after_a_restart(tmp_path: Path, seen: str) -> None:
    """'0 13 * * *' ran at 13:00 and becomes '30 13 * * *', seen at 14:00:30: the new
    schedule's 13:30 is its latest slot since the last one, and runs once as a catchup, as a
    CronJob's would (its lastScheduleTime, 13:00, outlives the edit)."""

    async def body(w: World) -> World:
        w.write("0 13 * * *")
        w.reconcile()
        await w.advance(3600)  # 13:00 runs; 13:00:30
        if seen == "live":
            await w.advance(3600)
        else:
            w = await w.restart(down=3600)
        w.write("30 13 * * *")
        w.reconcile()
        await w.advance(0)
        return w

    assert play(tmp_path, body).runs() == [
        ("13:00", "schedule", None),
        ("13:30", "catchup", None),
    ]


def test_an_edit_that_catches_up_nothing_leaves_the_last_slot_where_it_was(
    tmp_path: Path,
) -> None:
    """'0 * * * *' ran 13:00; at 13:10 an edit of something else; at 13:20 the schedule
    becomes '5 * * * *': 13:05 is the new schedule's latest slot since the last one, as it is
    without the 13:10 edit and after a restart."""

    async def body(w: World) -> World:
        w.write()
        w.reconcile()
        await w.advance(3600 + 600)  # 13:00 runs; 13:10:30
        w.write(extra=OTHER)
        w.reconcile()
        await w.advance(600)  # 13:20:30
        w.write("5 * * * *", extra=OTHER)
        w.reconcile()
        await w.advance(0)
        return w

    assert play(tmp_path, body).runs() == [("13:00", "schedule", None), ("13:05", "catchup", None)]


def test_a_new_jitter_does_not_run_the_period_again(tmp_path: Path) -> None:
    """An hourly task with jitterSeconds: 300 runs at hh:02:19 (its key's offset); widened at
    12:06 to 900 (hh:05:18), the 12:00 hour has run: the next run is 13:05:18."""

    async def body(w: World) -> World:
        w.write(extra="  jitterSeconds: 300\n")
        w.reconcile()
        await w.advance(330)  # 12:06:00; 12:02:19 ran
        w.write(extra="  jitterSeconds: 900\n")
        w.reconcile()
        await w.advance(3600)  # 13:06:00
        return w

    assert play(tmp_path, body).runs() == [("12:02", "schedule", None), ("13:05", "schedule", None)]
