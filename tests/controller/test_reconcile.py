"""Reconcile passes over real files, with the fake-clock scheduler and the in-memory store."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.core.desired import assemble
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.helpers import local_actions

T0 = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)


def doc(name: str, schedule: str = "* * * * *", extra: str = "") -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}}}\n"
        f'spec:\n  schedule: "{schedule}"\n{extra}  command: {{args: ["true"]}}\n'
    )


class World:
    """Files in a folder, a reconciler over them, a fake clock that drives the scheduler."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.now = T0
        self.store = MemoryRunStore()
        self.dispatcher = Dispatcher(
            self.store, owner="h:1:x", clock=lambda: self.now, actions=local_actions()
        )
        self.scheduler = MemoryScheduler(self.on_fire, T0)
        self.reconciler = Reconciler(
            [DirectorySource([folder])], self.scheduler, self.dispatcher, clock=lambda: self.now
        )

    def on_fire(self, key: str, at: datetime) -> None:
        self.dispatcher.fire(self.scheduler.owned()[key], at)

    def write(self, name: str, text: str) -> None:
        path = self.folder / name
        path.write_text(text)

    def reconcile(self) -> str:
        self.reconciler.refresh(None)
        return self.reconciler.apply(None).plan.summary()

    async def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.scheduler.advance(self.now)
        assert await self.dispatcher.drain(10)

    def runs(self, key: str = "default/job") -> list[tuple[str, str, str | None]]:
        items = self.store.query(RunQuery(task=key, limit=1000)).items
        return [
            (r.scheduled_at.strftime("%H:%M"), str(r.trigger), r.reason)
            for r in sorted(items, key=lambda r: r.scheduled_at)
        ]


def play(tmp_path: Path, body: Callable[[World], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        world = World(tmp_path)
        await body(world)
        await world.dispatcher.shutdown(0)

    asyncio.run(main())


def test_a_pass_twice_changes_nothing(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.write("a.yaml", doc("job"))
        assert w.reconcile() == "1 to add, 0 to change, 0 to remove, 0 unchanged"
        assert w.reconcile() == "0 to add, 0 to change, 0 to remove, 1 unchanged"

    play(tmp_path, body)


def test_a_schedule_a_cronjob_reads_otherwise_is_warned_of_when_it_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def warned() -> list[tuple[object, object]]:
        said = [r for r in caplog.records if r.getMessage() == "schedule differs from a CronJob's"]
        caplog.clear()
        assert all(r.levelno == logging.WARNING for r in said)
        fields = [r.fields for r in said]  # type: ignore[attr-defined]
        return [(f["task"], f["schedule"]) for f in fields]

    async def body(w: World) -> None:
        caplog.set_level(logging.INFO, logger="crontask.controller")
        w.write("a.yaml", doc("job", schedule="0 9 * * 1/2") + "---\n" + doc("plain", "0 9 * * 1"))
        w.reconcile()
        assert warned() == [("default/job", "0 9 * * 1/2")]
        w.write("a.yaml", doc("job", "0 9 * * 1/2", extra="  timeoutSeconds: 5\n"))
        assert w.reconcile().startswith("0 to add, 1 to change")
        assert warned() == []  # the schedule did not change: told once
        w.write("a.yaml", doc("job", schedule="0 9 * * 1/3"))
        w.reconcile()
        assert warned() == [("default/job", "0 9 * * 1/3")]
        w.write("a.yaml", doc("job", schedule="0 9 * * 1-7/3"))  # the same days, said plainly
        assert w.reconcile().startswith("0 to add, 1 to change")
        assert warned() == []

    play(tmp_path, body)


def test_broken_file_keeps_the_job_and_flags_the_error(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.write("a.yaml", doc("job"))
        w.reconcile()
        before = w.scheduler.owned()["default/job"]
        w.write("a.yaml", doc("job", schedule="99 * * * *"))
        assert w.reconcile().startswith("0 to add, 0 to change, 0 to remove")
        assert w.scheduler.owned()["default/job"].hash == before.hash
        (problem,) = w.reconciler.desired.problems
        assert ":5:14:" in problem
        assert "minute field" in problem
        await w.advance(60)
        assert w.runs() == [("12:01", "schedule", None)]

    play(tmp_path, body)


def test_suspend_leaves_no_records_and_resume_runs_only_the_latest_slot(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.write("a.yaml", doc("job"))
        w.reconcile()
        await w.advance(60)  # 12:01 runs
        w.write("a.yaml", doc("job", extra="  suspend: true\n"))
        w.reconcile()
        for _ in range(10):  # ten minutes suspended
            await w.advance(60)
        assert w.runs() == [("12:01", "schedule", None)]
        w.write("a.yaml", doc("job"))
        w.reconcile()
        await w.advance(0)
        # The 12:11 slot (the latest missed) runs as a catch-up; nothing about 12:02-12:10.
        assert w.runs() == [("12:01", "schedule", None), ("12:11", "catchup", None)]
        await w.advance(60)
        assert w.runs()[-1] == ("12:12", "schedule", None)

    play(tmp_path, body)


def test_resume_respects_the_starting_deadline(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.write("a.yaml", doc("job", schedule="0 * * * *", extra="  startingDeadlineSeconds: 60\n"))
        w.reconcile()
        w.write(
            "a.yaml",
            doc(
                "job",
                schedule="0 * * * *",
                extra="  suspend: true\n  startingDeadlineSeconds: 60\n",
            ),
        )
        w.reconcile()
        await w.advance(3 * 3600 + 600)  # the 15:00 slot is ten minutes late
        w.write("a.yaml", doc("job", schedule="0 * * * *", extra="  startingDeadlineSeconds: 60\n"))
        w.reconcile()
        await w.advance(0)
        # As a resumed CronJob: nothing for a slot past its deadline, not even a record.
        assert w.store.query(RunQuery(task="default/job")).items == []

    play(tmp_path, body)


def test_a_task_added_later_catches_up_nothing(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.write("a.yaml", doc("other"))
        w.reconcile()
        await w.advance(600)
        w.write("b.yaml", doc("job"))
        w.reconcile()
        await w.advance(0)
        assert w.runs() == []
        await w.advance(60)
        assert len(w.runs()) == 1

    play(tmp_path, body)


def test_arrivals_count_the_passes_that_declare_a_task_anew(tmp_path: Path) -> None:
    """Not the first pass, nor an edit, a resync or a removal: only a key not declared before
    (the heartbeat looks for its runs nobody told of then)."""

    async def body(w: World) -> None:
        w.write("a.yaml", doc("a"))
        w.reconcile()
        w.write("a.yaml", doc("a", "*/5 * * * *"))
        w.reconcile()
        w.reconcile()
        assert w.reconciler.arrivals == 0
        w.write("b.yaml", doc("b"))
        w.write("c.yaml", doc("c"))
        w.reconcile()
        assert w.reconciler.arrivals == 1
        (tmp_path / "b.yaml").unlink()
        w.reconcile()
        assert w.reconciler.arrivals == 1
        w.write("b.yaml", doc("b"))
        w.reconcile()
        assert w.reconciler.arrivals == 2

    play(tmp_path, body)


def test_passes_after_events_agree_with_a_full_pass(tmp_path: Path) -> None:
    # An event-driven pass re-settles only the keys its files touched; whatever the edits
    # (tasks moving between files, duplicates across files, broken files, deletions), it
    # must end where assembling everything would.
    rng = random.Random(7)  # noqa: S311 - a reproducible sequence of edits, not a secret
    source = DirectorySource([tmp_path])
    idle = Dispatcher(MemoryRunStore(), owner="h:1:x", actions=local_actions())
    reconciler = Reconciler([source], MemoryScheduler(lambda key, at: None, T0), idle)
    files = [tmp_path / f"f{i}.yaml" for i in range(4)]
    names = [f"t{i}" for i in range(6)]
    reconciler.refresh(None)
    for step in range(150):
        path = rng.choice(files)
        action = rng.random()
        if action < 0.6:
            chosen = rng.sample(names, rng.randint(1, 3))
            minute = rng.randint(0, 3)
            path.write_text("---\n".join(doc(n, f"{minute} * * * *") for n in chosen))
        elif action < 0.8:
            path.write_text(doc(rng.choice(names)) + "  oops: [\n")
        else:
            path.unlink(missing_ok=True)
        reconciler.refresh({"file": {str(path.absolute())}})
        full = assemble(source.definitions(), source.errors())
        assert reconciler.desired == full, f"step {step}: {path.name}"
