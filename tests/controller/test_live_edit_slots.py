"""Edits seen live, through a real reconcile pass over a folder, with real commands and a fake
clock: a waiting retry an edit ends no longer blocks the run the edit asks for (Forbid); a new
jitterSeconds in the lead of a slot handed over ahead does not run that period twice; resuming
past the deadline of the latest missed slot leaves no record (README: Suspend, Edits)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.core.schedule import jitter_offset
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.helpers import local_actions

KEY = "default/job"
T0 = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)


def doc(schedule: str, cmd: str = "true", extra: str = "") -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: job}\n"
        f'spec:\n  schedule: "{schedule}"\n{extra}'
        f'  command: {{args: ["{cmd}"]}}\n'
    )


class Rig:
    """A reconciler over ``folder`` with a memory scheduler, a dispatcher and a fake clock."""

    def __init__(self, folder: Path, now: datetime) -> None:
        self.folder = folder
        self.now = now
        self.store = MemoryRunStore()
        self.dispatcher = Dispatcher(
            self.store, owner="h:1:x", clock=lambda: self.now, actions=local_actions()
        )
        self.scheduler = MemoryScheduler(self._fired, now)
        self.reconciler = Reconciler(
            [DirectorySource([folder])], self.scheduler, self.dispatcher, clock=lambda: self.now
        )
        self.ended: list[RunRecord] = []
        self.dispatcher.subscribe(self._heard)

    def _fired(self, key: str, at: datetime) -> None:
        self.dispatcher.fire(self.scheduler.owned()[key], at)

    def _heard(self, record: RunRecord) -> None:
        if record.status is not RunStatus.RUNNING:
            self.ended.append(record)

    def write(self, text: str) -> None:
        (self.folder / "a.yaml").write_text(text)
        self.reconciler.refresh(None)
        self.reconciler.apply(None)

    def at(self, now: datetime) -> None:
        self.now = now
        self.scheduler.advance(now)

    async def until(self, what: str, condition: Callable[[], bool]) -> None:
        for _ in range(2500):  # at most 5 s: real commands start and end meanwhile
            if condition():
                return
            await asyncio.sleep(0.002)
        raise AssertionError(f"not met: {what}: {self.ended} {self.records()}")

    def records(self) -> list[tuple[str, int, str, str, str | None]]:
        runs = self.store.query(RunQuery(task=KEY, limit=100)).items
        return [
            (r.scheduled_at.strftime("%H:%M:%S"), r.attempt, r.trigger, r.status, r.reason)
            for r in sorted(runs, key=lambda r: (r.scheduled_at, r.attempt))
        ]


@pytest.mark.parametrize("asked", ["catchup", "manual"])
def test_a_retry_an_edit_ends_does_not_forbid_the_run_the_edit_asks_for(
    tmp_path: Path, asked: str
) -> None:
    """Forbid (the default). The edit cancels the waiting retry (TaskChanged) and, in the same
    pass, fires the new schedule's latest slot since the last one (or a manual run is asked in
    that turn): the cancelled retry holds nothing, so the run is not ConcurrencyForbid."""
    retry = "  retry: {limit: 2, backoffSeconds: 3600}\n"

    async def main() -> list[tuple[str, int, str, str, str | None]]:
        rig = Rig(tmp_path, T0)
        rig.write(doc("0 * * * *", "false", retry))
        rig.at(datetime(2026, 11, 26, 13, 0, tzinfo=UTC))
        await rig.until("attempt 1 failed", lambda: bool(rig.dispatcher.waiting(KEY)))
        rig.at(datetime(2026, 11, 26, 13, 5, tzinfo=UTC))
        if asked == "catchup":
            rig.write(doc("2 * * * *", "true", retry))  # 13:02 is due: a catch-up
        else:
            rig.write(doc("0 * * * *", "true", retry))  # nothing to catch up
            rig.dispatcher.fire_manual(rig.scheduler.owned()[KEY])
        await rig.until("the run asked for ended", lambda: len(rig.ended) == 3)
        assert await rig.dispatcher.drain(5)
        await rig.dispatcher.shutdown(0)
        return rig.records()

    records = asyncio.run(main())
    assert records[:2] == [
        ("13:00:00", 1, "schedule", "failed", "NonZeroExit"),
        ("13:00:00", 2, "retry", "skipped", "TaskChanged"),
    ]
    slot = "13:02:00" if asked == "catchup" else "13:05:00"
    assert records[2:] == [(slot, 1, asked, "succeeded", None)]


@pytest.mark.parametrize("edited", ["in-the-lead", "just-after"])
def test_a_new_jitter_around_a_slot_does_not_run_its_period_twice(
    tmp_path: Path, edited: str
) -> None:
    """The new jitterSeconds moves the last slot, 13:00:00, to 13:00:00 plus the offset, after
    now: the changed job's first slot, that same instant, is the period that ran, recorded
    skipped (PeriodRan); the next period runs as usual. The edit comes in the lead of 13:00:00,
    once the scheduler handed it over ahead (the dispatcher decides and claims it then), or
    half a second after it ran."""
    offset = timedelta(seconds=jitter_offset(KEY, 5))
    slot = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    assert offset > timedelta(seconds=0.5)  # the edit comes before the moved slot

    async def main() -> list[tuple[str, int, str, str, str | None]]:
        rig = Rig(tmp_path, slot - timedelta(seconds=8))
        rig.write(doc("*/10 * * * * *"))
        if edited == "in-the-lead":
            rig.at(slot - timedelta(seconds=0.03))
            rig.dispatcher.due(rig.scheduler.owned()[KEY], slot)  # as ApsScheduler hands it over
        else:
            rig.at(slot)
            await rig.until("13:00:00 ran", lambda: len(rig.ended) == 1)
            rig.at(slot + timedelta(seconds=0.5))
        rig.write(doc("*/10 * * * * *", extra="  jitterSeconds: 5\n"))
        assert rig.scheduler.next_fire_time(KEY) == slot + offset
        await rig.until("13:00:00 ran", lambda: len(rig.ended) == 1)
        rig.at(slot + offset)
        rig.at(slot + offset + timedelta(seconds=10))
        await rig.until("the next period ran", lambda: len(rig.ended) == 3)  # and the skip
        assert await rig.dispatcher.drain(5)
        await rig.dispatcher.shutdown(0)
        return rig.records()

    moved = (slot + offset).strftime("%H:%M:%S")
    next_period = (slot + offset + timedelta(seconds=10)).strftime("%H:%M:%S")
    assert asyncio.run(main()) == [
        ("13:00:00", 1, "schedule", "succeeded", None),
        (moved, 1, "schedule", "skipped", "PeriodRan"),
        (next_period, 1, "schedule", "succeeded", None),
    ]


@pytest.mark.parametrize(
    ("resumed", "catchup"),
    [((17, 5), [("17:00:00", 1, "catchup", "succeeded", None)]), ((17, 30), [])],
    ids=["inside-deadline", "past-deadline"],
)
def test_resuming_past_the_deadline_of_the_latest_missed_slot_leaves_no_record(
    tmp_path: Path, resumed: tuple[int, int], catchup: list[tuple[str, int, str, str, None]]
) -> None:
    """Suspended at 13:10, resumed later: 17:00 runs as a catch-up if it is inside
    startingDeadlineSeconds (600); past it, nothing is recorded, as for the slots missed while
    suspended (a resumed CronJob creates nothing)."""

    def suspended(flag: str) -> str:
        extra = f"  startingDeadlineSeconds: 600\n  suspend: {flag}\n"
        return doc("0 * * * *", extra=extra)

    async def main() -> list[tuple[str, int, str, str, str | None]]:
        rig = Rig(tmp_path, datetime(2026, 11, 26, 12, 30, tzinfo=UTC))
        rig.write(suspended("false"))
        rig.at(datetime(2026, 11, 26, 13, 0, tzinfo=UTC))
        await rig.until("13:00 ran", lambda: len(rig.ended) == 1)
        rig.at(datetime(2026, 11, 26, 13, 10, tzinfo=UTC))
        rig.write(suspended("true"))
        rig.at(datetime(2026, 11, 26, *resumed, tzinfo=UTC))
        rig.write(suspended("false"))
        await rig.until("the catch-up ran", lambda: len(rig.ended) == 1 + len(catchup))
        assert await rig.dispatcher.drain(5)
        await rig.dispatcher.shutdown(0)
        return rig.records()

    assert asyncio.run(main()) == [("13:00:00", 1, "schedule", "succeeded", None), *catchup]
