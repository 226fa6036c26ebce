"""With replicas, a manual run under Forbid or Replace whose claim the store cannot answer (the
look for a run of the task on another replica could not be made) does not start: two run-nows
asked of two replicas at once, one of them cut off from the store, never both run. It is
recorded skipped (``StoreUnavailable``) once the store answers. Under Allow, and without
replicas, such a run still runs, its records kept for later. Two dispatchers share one
in-memory store; one reaches it through a ``Cut`` (every call raises StoreUnavailable)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import pytest

from reconciler.controller.claims import STORE_UNAVAILABLE
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.store import MemoryRunStore
from reconciler.store.base import ExclusiveClaim, RunStore, StoreUnavailable
from tests.controller.test_cluster_unchecked import Cut
from tests.controller.test_replica_policies import T0, Replica, replica, until
from tests.helpers import definition


def cut_replica(store: MemoryRunStore, owner: str, *, ha: bool = True) -> tuple[Replica, Cut]:
    """A dispatcher that reaches ``store`` through a Cut (with replicas unless ``ha`` is
    False), retrying kept records at once: the test waits for them, not for a backoff."""
    cut = Cut(store)
    seen = cast(RunStore, cut)
    action = ScriptedAction()
    now = T0 + timedelta(seconds=2)
    d = Dispatcher(seen, owner=owner, clock=lambda: now, actions=Actions([action]))
    d.recorder.retry_initial = d.recorder.retry_max = 0.01
    if ha:
        d.handover = Handover(seen, owner, d.recorder.call, poll=0.01)
    return Replica(d, action), cut


async def finish(*replicas: Replica) -> None:
    """End every run, and wait until every record is written (a shutdown without grace would
    not wait for those kept for the store)."""
    for r in replicas:
        for attempt in r.action.attempts:
            attempt.finish()
        assert await r.d.drain(5)
        assert await r.d.recorder.flush(5)
        await r.d.shutdown(0)


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
def test_a_manual_run_the_store_cannot_check_is_not_run_beside_another_replica_s(
    policy: str,
) -> None:
    job = definition("job", concurrencyPolicy=policy)
    store = MemoryRunStore()
    asked: list[RunRecord] = []

    async def main() -> None:
        a = replica(store, "a:1:x", T0 + timedelta(seconds=1))
        b, cut = cut_replica(store, "b:2:y")
        asked.append(a.d.fire_manual(job))
        await until(lambda: bool(a.action.running()))
        cut.down = True
        asked.append(b.d.fire_manual(job))
        assert asked[1].status is RunStatus.RUNNING  # decided by its claim, on its way
        assert await b.d.drain(5)  # decided: not started
        assert b.action.attempts == []
        assert b.d.recorder.pending == 1  # its skip, kept for the store
        cut.down = False
        await finish(a, b)

    asyncio.run(main())
    ran, skipped = (store.get(r.id) for r in asked)
    assert ran is not None
    assert ran.status is RunStatus.SUCCEEDED
    assert skipped is not None
    assert (skipped.status, skipped.reason, skipped.owner) == (
        RunStatus.SKIPPED,
        STORE_UNAVAILABLE,
        "b:2:y",
    )
    assert f"concurrencyPolicy {policy}" in (skipped.message or "")
    assert skipped.started_at is None


class LostAnswer(MemoryRunStore):
    """Takes the first ``claim_exclusive`` and loses its answer (the connection cut after the
    commit went out): the row is there, this replica's, ``running``."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        answers = super().claim_exclusive(records)
        if not self.lost:
            self.lost += 1
            raise StoreUnavailable("server closed the connection unexpectedly")
        return answers


def test_a_manual_run_whose_claim_answer_was_lost_leaves_no_running_row() -> None:
    """Its row would stand ``running`` for good, a run of the task going for every other
    replica's Forbid: the skip is written over it."""
    job = definition("job", concurrencyPolicy="Forbid")
    store = LostAnswer()
    asked: list[RunRecord] = []

    async def main() -> None:
        a = replica(store, "a:1:x", T0 + timedelta(seconds=1))
        asked.append(a.d.fire_manual(job))
        assert await a.d.drain(5)
        assert a.action.attempts == []
        await a.d.shutdown(0)

    asyncio.run(main())
    assert store.lost == 1
    record = store.get(asked[0].id)
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, STORE_UNAVAILABLE)
    assert store.running() == []


@pytest.mark.parametrize(("policy", "ha"), [("Allow", True), ("Forbid", False)])
def test_a_manual_run_the_store_cannot_answer_still_runs_under_allow_or_alone(
    policy: str, ha: bool
) -> None:
    """Nothing to look for (Allow), or nobody else to run it (one instance): it runs, and its
    records wait for the store."""
    job = definition("job", concurrencyPolicy=policy)
    store = MemoryRunStore()
    asked: list[RunRecord] = []

    async def main() -> None:
        b, cut = cut_replica(store, "b:2:y", ha=ha)
        cut.down = True
        asked.append(b.d.fire_manual(job))
        await until(lambda: bool(b.action.running()))
        cut.down = False
        await finish(b)

    asyncio.run(main())
    record = store.get(asked[0].id)
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED
