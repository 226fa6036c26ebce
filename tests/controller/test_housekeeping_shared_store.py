"""``Housekeeping`` without replicas keeps the mark of missed slots another crontask recorded.

Two crontasks without ``--ha`` share one ``--db`` (README), each declaring its own tasks. This
one's housekeeping named only its own tasks as declared, so the max age deleted the other's
newest slot run, and the other, down over its next slot, never caught it up. It now names
itself as the owner, and the store keeps the marks of other instances; with replicas (a
handover), every replica declares the same tasks and a task none declares goes by age, and
so it does on the state directory's own store, which no other crontask shares.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.controller.components import Housekeeping
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.core.desired import DesiredState
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.store import RunQuery, RunStore, sqlite_url
from reconciler.store.sql import SqlRunStore
from tests.controller.test_policies import KEY, task

ME = "host-a:100:aaaa"
OTHER = "host-b:200:bbbb"  # a crontask sharing the store, down for now
OLD = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # older than a day: past the max age
TASK = task()


@dataclasses.dataclass
class _Declared:
    applied: bool
    desired: DesiredState


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    opened = SqlRunStore.open(sqlite_url(tmp_path / "state"), writer=True)
    yield opened
    opened.close()


def _old_slot(key: str, owner: str) -> RunRecord:
    return RunRecord(
        id=run_id(key, OLD),
        task=key,
        scheduled_at=OLD,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
        started_at=OLD,
        finished_at=OLD + timedelta(seconds=1),
        exit_code=0,
        owner=owner,
    )


def _prune(store: RunStore, *, replicas: bool, shared: bool = True) -> set[str]:
    """One prune by this crontask (declaring ``KEY`` only), on a store given by ``--db``
    (``shared``) or its state directory's own; the tasks left in the store."""

    async def main() -> None:
        d = Dispatcher(store, owner=ME, actions=Actions([ScriptedAction()]))
        if replicas:
            d.handover = Handover(store, ME, d.recorder.call)
        scheduler = MemoryScheduler(lambda key, at: None, datetime.now(UTC))
        scheduler.apply(Step(Operation.ADD, KEY, TASK, None))
        declarations = _Declared(True, DesiredState({KEY: TASK}))
        housekeeping = Housekeeping(
            store, scheduler, d, Metrics(), interval=3600, max_age=86400.0,
            declarations=declarations, shared=shared,
        )  # fmt: skip
        await housekeeping.prune()
        await d.shutdown(0)

    store.save_many(
        [_old_slot(KEY, ME), _old_slot("ops/theirs", OTHER), _old_slot("ops/removed", ME)]
    )
    asyncio.run(main())
    return {r.task for r in store.query(RunQuery(limit=1000)).items}


def test_another_crontask_s_mark_outlives_this_one_s_prune(store: RunStore) -> None:
    assert _prune(store, replicas=False) == {KEY, "ops/theirs"}
    assert set(store.last_slots()) == {KEY, "ops/theirs"}


def test_with_replicas_a_task_none_declares_goes_by_age(store: RunStore) -> None:
    assert _prune(store, replicas=True) == {KEY}


def test_on_its_state_directory_s_own_store_a_task_not_declared_goes_by_age(
    store: RunStore,
) -> None:
    """``runs.db`` in the state directory is this crontask's alone: a mark another instance
    id recorded is a former start of this one's, of a task it no longer declares."""
    assert _prune(store, replicas=False, shared=False) == {KEY}


def _prune_twice(
    store: RunStore, beating: list[str], alone: list[str], seen: Collection[str] = ()
) -> list[set[str]]:
    """On the state directory's own store (no ``--db``), two prunes by one process: the first
    while ``beating`` have their rows in the store (``seen``: those the heartbeat saw beat),
    the second once the rows are deleted; the tasks (runs and ``tracked`` marks) left after
    each."""
    left: list[set[str]] = []

    def tasks() -> set[str]:
        return {r.task for r in store.query(RunQuery(limit=1000)).items} | set(store.last_slots())

    async def main() -> None:
        d = Dispatcher(store, owner=ME, actions=Actions([ScriptedAction()]))
        scheduler = MemoryScheduler(lambda key, at: None, datetime.now(UTC))
        scheduler.apply(Step(Operation.ADD, KEY, TASK, None))
        declarations = _Declared(True, DesiredState({KEY: TASK}))
        housekeeping = Housekeeping(
            store, scheduler, d, Metrics(), interval=3600, max_age=86400.0,
            declarations=declarations, alone=alone, beating=lambda: seen,
        )  # fmt: skip
        for instance in [ME, *beating]:
            store.beat(instance, 30.0, datetime.now(UTC))
        await housekeeping.prune()
        left.append(tasks())
        store.forget_beats(beating)
        await housekeeping.prune()
        left.append(tasks())
        await d.shutdown(0)

    store.save_many(
        [_old_slot(KEY, ME), _old_slot("ops/theirs", OTHER), _old_slot("ops/removed", ME)]
    )
    store.mark_tracked({"ops/untracked": OLD})  # declared there, never ran: its mark only
    asyncio.run(main())
    return left


def test_a_crontask_beating_in_the_state_directory_s_store_keeps_its_marks(
    store: RunStore,
) -> None:
    """Another crontask whose ``--db`` is this one's state directory's ``runs.db`` beats in
    it: its marks (a run's, a ``tracked`` one) stay, and still once it is down (it deleted its
    beat as it stopped), when it needs them to catch up the slots it misses."""
    kept = {KEY, "ops/theirs", "ops/untracked"}
    assert _prune_twice(store, beating=[OTHER], alone=[], seen=[OTHER]) == [kept, kept]


def test_a_former_start_s_beat_leaves_the_state_directory_s_store_pruned_as_ever(
    store: RunStore,
) -> None:
    """The beat of the state directory's last holder (a crashed start of this crontask whose
    row has not lapsed yet) is no other crontask's: what is not declared goes by age."""
    previous = "host-a:99:9999"
    assert _prune_twice(store, beating=[previous], alone=[previous]) == [{KEY}, {KEY}]


def test_the_row_of_an_earlier_start_never_seen_beating_does_not_share_the_store_for_good(
    store: RunStore,
) -> None:
    """A crash loop: the start before the state directory's last holder left its row too (it
    was killed before its successor's sweep deleted it). Its row reads the same at every look:
    the heartbeat never saw it beat. While it is there, the marks stay, as for a crontask not
    judged yet; once the sweep deleted it, the prunes go as on a store of this crontask alone
    (they went as on a shared --db for the rest of the process's life)."""
    earlier = "host-a:98:9898"
    kept = {KEY, "ops/theirs", "ops/untracked"}
    assert _prune_twice(store, beating=[earlier], alone=[]) == [kept, {KEY}]
