"""A manual run that was retried is no slot: its retries record trigger ``retry``, yet a
restart counts missed slots from the last scheduled run, not from the manual moment, and the
slot missed while the task was suspended is caught up when it is resumed."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

from reconciler.core.runs import RunRecord, RunStatus, Trigger, manual_slot, run_id
from tests.controller.test_catch_up_rules import RESUMED, SUSPENDED, World, play


def retried_manual_run(w: World) -> list[RunRecord]:
    """A manual run asked for now, failed, retried ten seconds later, failed again."""
    at = manual_slot(w.now)
    first = RunRecord(
        id=run_id("default/job", at),
        task="default/job",
        scheduled_at=at,
        trigger=Trigger.MANUAL,
        status=RunStatus.FAILED,
        started_at=at,
        finished_at=at + timedelta(seconds=1),
        exit_code=1,
    )
    retry = dataclasses.replace(
        first,
        trigger=Trigger.RETRY,
        attempt=2,
        started_at=at + timedelta(seconds=11),
        finished_at=at + timedelta(seconds=12),
    )
    return [first, retry]


def test_a_restart_after_a_retried_manual_run_still_catches_up(tmp_path: Path) -> None:
    async def body(w: World) -> World:
        w.write()
        w.reconcile()
        await w.advance(3600 + 600)  # 13:00 runs; 13:10:30
        w.write(extra=SUSPENDED)
        w.reconcile()
        await w.advance(3600)  # 14:00 falls while suspended; 14:10:30
        w.store.save_many(retried_manual_run(w))
        w = await w.restart(down=600)  # resumed while crontask was down
        w.write()
        w.reconcile()
        await w.advance(0)
        return w

    runs = play(tmp_path, body).runs()
    assert [r for r in runs if r[1] not in {"manual", "retry"}] == RESUMED
