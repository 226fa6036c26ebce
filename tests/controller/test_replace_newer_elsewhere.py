"""With replicas (``--ha``), a ``Replace`` slot that waits for a run on another replica to stop
is itself replaced by a newer run begun there meanwhile (a manual run asked of that replica),
as on one replica a run decided later replaces one that waits to start. It stopped that newer
run instead: its claim, tried again once the run it waited for had ended, asked the other
replica to stop whatever ran then, and started after it."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import cast

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.memory import ScriptedAction
from reconciler.store import MemoryRunStore
from tests.controller.test_policies import (
    KEY,
    T0,
    foreign_run,
    play,
    settle,
    task,
    until,
    with_handover,
)

OTHER = "other-host:7:gone"  # foreign_run's owner
LATER = T0 + timedelta(minutes=1)
JOB = task(concurrencyPolicy="Replace")


def _manual_there(store: MemoryRunStore, asked: timedelta) -> RunRecord:
    """A manual run asked of the other replica ``asked`` after the slot: running there."""
    at = LATER + asked
    record = RunRecord(
        id=run_id(KEY, at),
        task=KEY,
        scheduled_at=at,
        trigger=Trigger.MANUAL,
        status=RunStatus.RUNNING,
        started_at=at,
        owner=OTHER,
    )
    store.claim(record)
    return record


def test_a_waiting_slot_is_replaced_by_a_newer_run_begun_elsewhere() -> None:
    newer: list[RunRecord] = []

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        store = cast(MemoryRunStore, d.recorder.store)
        old = foreign_run(store, T0)
        with_handover(d, store).inherit(KEY)
        d.fire(JOB, LATER)
        await until(lambda: store.stop_requests(OTHER) == [(old.id, 1, "Replaced")])
        # The other replica: a manual run asked there replaces its run, and starts.
        store.complete(dataclasses.replace(old, status=RunStatus.FAILED, reason="Replaced"))
        newer.append(_manual_there(store, timedelta(seconds=0.3)))
        slot = run_id(KEY, LATER)
        # Its claim tried again: the slot recorded, or the newer run asked to stop.
        await until(lambda: bool(store.get(slot) or store.stop_requests(OTHER)))
        assert store.stop_requests(OTHER) == []  # the newer run goes on
        await settle(d, action)
        assert action.attempts == []  # the slot never started

    store = play(body)
    slot = store.get(run_id(KEY, LATER))
    assert slot is not None
    assert (slot.status, slot.reason) == (RunStatus.SKIPPED, "Replaced"), slot
    assert newer[0].id in (slot.message or ""), slot
    kept = store.get(newer[0].id)
    assert kept is not None
    assert kept.status is RunStatus.RUNNING  # its replica's to end


def test_a_slot_replaces_what_runs_elsewhere_at_its_first_look_newer_or_not() -> None:
    """Only a run begun while the slot waited replaces it: at its first look the slot replaces
    whatever runs there (a manual run asked after its instant, the slot fired late)."""

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        store = cast(MemoryRunStore, d.recorder.store)
        there = _manual_there(store, timedelta(seconds=0.3))
        with_handover(d, store).inherit(KEY)
        d.fire(JOB, LATER)
        await until(lambda: store.stop_requests(OTHER) == [(there.id, 1, "Replaced")])
        assert action.attempts == []  # the slot waits for it to end
        store.complete(dataclasses.replace(there, status=RunStatus.FAILED, reason="Replaced"))
        await settle(d, action)

    store = play(body)
    ran = store.get(run_id(KEY, LATER))
    assert ran is not None
    assert ran.status is RunStatus.SUCCEEDED
