"""With replicas, a claim whose answer was lost: the commit went out, the connection was cut
before its reply came back. The store holds the claim (a ``running`` row of this replica's);
the replica heard StoreUnavailable and left the slot unstarted for its catch-up. That catch-up
found the row, took it for another instance's ("slot already claimed by another instance"),
and the row stayed ``running`` for good, the slot never run. Now the replica takes its own
row as claimed, once, and never a row it did not lose the answer for, nor one that has ended.

Each store the replicas may share (memory, SQLite, PostgreSQL), behind a wrapper that loses
the reply of the next claims after their commit, exactly as a cut connection does.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.store.base import ExclusiveClaim, RunStore, StoreUnavailable
from tests.helpers import definition

SLOT = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
KEY = "default/job"
ME = "a:1:a"
ID = run_id(KEY, SLOT)


class LostReply:
    """``store`` through a connection cut after the commit of the next ``lose`` claims: each is
    taken, and its caller hears StoreUnavailable."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.lose = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def _cut(self) -> None:
        if self.lose:
            self.lose -= 1
            raise StoreUnavailable("server closed the connection unexpectedly")

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        got = self.store.claim_many(records)
        self._cut()
        return got

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        got = self.store.claim_exclusive(records)
        self._cut()
        return got


def replica(store: LostReply) -> tuple[Dispatcher, ScriptedAction]:
    shared = cast(RunStore, store)
    action = ScriptedAction()
    d = Dispatcher(shared, owner=ME, clock=lambda: SLOT, actions=Actions([action]))
    d.handover = Handover(shared, ME, d.recorder.call, poll=0.01)
    return d, action


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


def the_row(store: RunStore) -> tuple[Any, ...]:
    rows = store.attempts(ID)
    return tuple((r.attempt, r.status, r.owner) for r in rows)


@pytest.mark.parametrize(
    ("policy", "lost"),
    [
        ("Allow", 1),  # claim_many's reply
        ("Forbid", 2),  # claim_exclusive's, then the plain claim's that follows it
        ("Replace", 2),
    ],
)
def test_a_claim_whose_answer_was_lost_is_run_once_by_the_catch_up(
    store: RunStore, policy: str, lost: int
) -> None:
    job = definition("job", concurrencyPolicy=policy)
    shared = LostReply(store)

    async def main() -> None:
        d, action = replica(shared)
        shared.lose = lost
        d.fire(job, SLOT)
        assert await d.drain(5)
        assert action.attempts == []  # not started: its claim could not be checked
        assert KEY in d.unstarted
        assert the_row(store) == ((1, RunStatus.RUNNING, ME),)  # yet the claim was taken
        d.catch_up(job, d.last_slot(KEY), SLOT)
        await until(lambda: len(action.attempts) == 1)
        d.fire(job, SLOT, Trigger.CATCHUP)  # the same slot again while it runs: not twice
        action.attempts[0].finish(SUCCESS)
        assert await d.drain(5)
        d.fire(job, SLOT, Trigger.CATCHUP)  # and not after it ended
        assert await d.drain(5)
        assert len(action.attempts) == 1
        await d.shutdown(0)

    asyncio.run(main())
    assert the_row(store) == ((1, RunStatus.SUCCEEDED, ME),)


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
def test_an_exclusive_claim_whose_answer_was_lost_runs_at_once(
    store: RunStore, policy: str
) -> None:
    """The plain claim that follows an unanswered exclusive one finds the row: its own."""
    job = definition("job", concurrencyPolicy=policy)
    shared = LostReply(store)

    async def main() -> None:
        d, action = replica(shared)
        shared.lose = 1
        d.fire(job, SLOT)
        await until(lambda: len(action.attempts) == 1)
        action.attempts[0].finish(SUCCESS)
        assert await d.drain(5)
        assert KEY not in d.unstarted
        await d.shutdown(0)

    asyncio.run(main())
    assert the_row(store) == ((1, RunStatus.SUCCEEDED, ME),)


@pytest.mark.parametrize(("policy", "lost"), [("Allow", 1), ("Forbid", 2)])
def test_a_row_of_ours_is_not_taken_unless_its_claim_was_lost_here(
    store: RunStore, policy: str, lost: int
) -> None:
    """A running row of this owner's whose claim was answered (its run is someone's), and a
    lost claim's row that ended meanwhile (marked interrupted): both refuse the catch-up."""
    job = definition("job", concurrencyPolicy=policy)
    other = run_id(KEY, SLOT + timedelta(minutes=1))
    shared = LostReply(store)

    async def main() -> None:
        d, action = replica(shared)
        theirs = RunRecord(
            other, KEY, SLOT + timedelta(minutes=1), Trigger.SCHEDULE, RunStatus.RUNNING
        )
        store.claim(dataclasses.replace(theirs, owner=ME, started_at=SLOT))
        d.fire(job, SLOT + timedelta(minutes=1), Trigger.CATCHUP)
        assert await d.drain(5)
        shared.lose = lost
        d.fire(job, SLOT)
        assert await d.drain(5)
        assert shared.lose == 0
        (held,) = store.attempts(ID)
        store.complete(dataclasses.replace(held, status=RunStatus.INTERRUPTED, finished_at=SLOT))
        d.fire(job, SLOT, Trigger.CATCHUP)
        assert await d.drain(5)
        assert action.attempts == []
        await d.shutdown(0)

    asyncio.run(main())
    assert [r.status for r in store.attempts(other)] == [RunStatus.RUNNING]
    assert the_row(store) == ((1, RunStatus.INTERRUPTED, ME),)
