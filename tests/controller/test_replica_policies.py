"""Forbid and Replace across replicas: two dispatchers (two replicas) sharing one run store,
with the in-memory action. A run of a task on one of them keeps the other's out, whichever
asked first and however close together, because the look and the claim are one step."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.store import MemoryRunStore
from reconciler.store.base import ExclusiveClaim, RunQuery
from tests.helpers import definition

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "default/job"


@dataclasses.dataclass
class Replica:
    d: Dispatcher
    action: ScriptedAction


def replica(store: MemoryRunStore, owner: str, now: datetime) -> Replica:
    """A dispatcher with replicas (a Handover), on a clock of its own (so that two manual
    runs asked at once have two ids, as on two machines)."""
    action = ScriptedAction()
    d = Dispatcher(store, owner=owner, clock=lambda: now, actions=Actions([action]))
    d.handover = Handover(store, owner, d.recorder.call, poll=0.01)
    return Replica(d, action)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


def play(
    body: Callable[[Replica, Replica], Coroutine[Any, Any, None]],
    store: MemoryRunStore | None = None,
) -> MemoryRunStore:
    store = MemoryRunStore() if store is None else store

    async def main() -> None:
        a = replica(store, "a:1:x", T0 + timedelta(seconds=1))
        b = replica(store, "b:2:y", T0 + timedelta(seconds=2))
        await body(a, b)
        for r in (a, b):
            for attempt in r.action.attempts:
                attempt.finish()
            assert await r.d.drain(5)
            await r.d.shutdown(0)

    asyncio.run(main())
    return store


def started(*replicas: Replica) -> list[str]:
    return [a.record.id for r in replicas for a in r.action.attempts if a.started]


def test_manual_runs_asked_of_two_replicas_at_once_run_once_under_forbid() -> None:
    job = definition("job", concurrencyPolicy="Forbid")
    asked: list[RunRecord] = []

    async def body(a: Replica, b: Replica) -> None:
        asked.extend([a.d.fire_manual(job), b.d.fire_manual(job)])
        store = a.d.recorder.store
        await until(lambda: all(store.get(r.id) is not None for r in asked))
        await until(lambda: bool(a.action.running() or b.action.running()))
        assert len(started(a, b)) == 1

    store = play(body)
    records = {r.id: store.get(r.id) for r in asked}
    ran = [r for r in records.values() if r is not None and r.status is RunStatus.SUCCEEDED]
    skipped = [r for r in records.values() if r is not None and r.status is RunStatus.SKIPPED]
    assert len(ran) == len(skipped) == 1
    assert skipped[0].reason == "ConcurrencyForbid"
    assert f"{ran[0].id} on {ran[0].owner}" in (skipped[0].message or "")


def test_the_owner_s_slot_skips_while_a_manual_run_goes_on_another_replica() -> None:
    """Asked of a replica that does not own the task, just before the owner's slot: the
    owner, which had no reason to think the task was running elsewhere, still finds it."""
    job = definition("job", concurrencyPolicy="Forbid")
    slot = T0 + timedelta(minutes=1)

    async def body(a: Replica, b: Replica) -> None:
        b.d.fire_manual(job)
        await until(lambda: bool(b.action.running()))
        assert a.d.handover is not None
        assert not a.d.handover.inherited(KEY)
        a.d.fire(job, slot)
        assert await a.d.drain(5)
        assert a.action.attempts == []

    store = play(body)
    record = store.get(run_id(KEY, slot))
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, "ConcurrencyForbid")


def test_a_skip_for_a_run_on_another_replica_is_not_told_as_a_slot_claimed_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The skip is this replica's own record of the slot: no other instance claimed it, and a
    "slot already claimed by another instance" line read like a fencing conflict."""
    job = definition("job", concurrencyPolicy="Forbid")
    slot = T0 + timedelta(minutes=1)

    async def body(a: Replica, b: Replica) -> None:
        b.d.fire_manual(job)
        await until(lambda: bool(b.action.running()))
        a.d.fire(job, slot)
        assert await a.d.drain(5)

    with caplog.at_level(logging.INFO, logger="crontask"):
        store = play(body)
    record = store.get(run_id(KEY, slot))
    assert record is not None
    assert record.reason == "ConcurrencyForbid"
    said = [r.getMessage() for r in caplog.records]
    assert "slot skipped" in said
    assert "slot already claimed by another instance" not in said
    assert "on b:2:y" in (record.message or "")


def test_manual_runs_asked_of_two_replicas_at_once_take_turns_under_replace() -> None:
    job = definition("job", concurrencyPolicy="Replace")
    asked: list[RunRecord] = []

    async def body(a: Replica, b: Replica) -> None:
        asked.extend([a.d.fire_manual(job), b.d.fire_manual(job)])
        store = a.d.recorder.store
        await until(lambda: len(started(a, b)) == 1)
        first = a if a.action.running() else b
        # The other replica asked the first one, through the store, to stop its run; the
        # first one sees the request as its membership loop polls for it.
        await until(lambda: bool(store.stop_requests(first.d.owner)))
        assert len(started(a, b)) == 1  # nothing more starts before the first one ends
        for run, _, reason in store.stop_requests(first.d.owner):
            assert first.d.stop_run(run, reason)
        await until(lambda: len(started(a, b)) == 2)

    store = play(body)
    outcomes = sorted((r.status, r.reason) for x in asked if (r := store.get(x.id)) is not None)
    assert outcomes == [(RunStatus.FAILED, "Replaced"), (RunStatus.SUCCEEDED, None)]


class CountingStore(MemoryRunStore):
    """Says how many records each ``claim_exclusive`` and ``claim_many`` took."""

    def __init__(self) -> None:
        super().__init__()
        self.exclusive: list[int] = []
        self.many: list[int] = []

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        self.exclusive.append(len(records))
        return super().claim_exclusive(records)

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        self.many.append(len(records))
        return super().claim_many(records)


def test_claims_of_slots_due_together_travel_together() -> None:
    store = CountingStore()
    jobs = [definition(f"t{i}") for i in range(50)]

    async def body(a: Replica, b: Replica) -> None:
        for job in jobs:
            a.d.fire(job, T0)
        await until(lambda: len(a.action.running()) == len(jobs))

    play(body, store)
    assert store.exclusive == [1, 49]  # the first at once, alone; the rest in one batch
    assert store.many == []


def test_without_replicas_claims_look_for_nothing() -> None:
    store = CountingStore()

    async def main() -> None:
        action = ScriptedAction()
        d = Dispatcher(store, owner="a:1:x", clock=lambda: T0, actions=Actions([action]))
        d.fire(definition("job"), T0)
        d.fire_manual(definition("other"))
        await until(lambda: len(action.running()) == 2)
        for attempt in action.attempts:
            attempt.finish()
        await d.shutdown(0)

    asyncio.run(main())
    assert store.exclusive == []
    assert sum(store.many) == 2
    ran = store.query(RunQuery(limit=10)).items
    assert sorted(r.trigger for r in ran) == [Trigger.MANUAL, Trigger.SCHEDULE]
