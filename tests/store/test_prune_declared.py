"""The max age keeps each task's mark of missed slots only while the task is declared.

The newest run of a slot stays however old so that a restart across a ``@monthly`` task's next
slot still runs it (``RunStore.last_slots``). A task no longer declared has no slot to come:
its last run used to be kept forever whatever ``--history-max-age`` said (and, on the SQL
store, read again in every transaction of every prune). ``declared`` names the tasks declared
now; without it (``None``) every task's mark stays, as the caller cannot tell.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

import pytest

from reconciler.core.runs import RunStatus, Trigger
from reconciler.store import RunStore

from ._records import T0, everything, rec

NOW = T0 + timedelta(days=40)
MAX_AGE = timedelta(days=30)


@pytest.mark.parametrize(
    ("declared", "left"),
    [
        pytest.param({"ops/monthly"}, {"ops/monthly"}, id="removed-task-goes"),
        pytest.param(None, {"ops/monthly", "ops/removed"}, id="unknown-keeps-all"),
        pytest.param(set(), set(), id="none-declared"),
    ],
)
def test_a_removed_task_s_last_slot_goes_by_age(
    store: RunStore, declared: Collection[str] | None, left: set[str]
) -> None:
    for task in ("ops/monthly", "ops/removed"):
        store.claim(rec(task, 0, RunStatus.FAILED))
        store.claim(rec(task, 10))  # its newest slot, 40 days old
        store.claim(rec(task, 20, trigger=Trigger.MANUAL))
    # Running (by hand): never deleted, and no slot.
    store.claim(rec("ops/removed", 30, RunStatus.RUNNING, trigger=Trigger.MANUAL))

    store.prune({}, MAX_AGE, NOW, declared=declared)

    kept = {(r.task, r.scheduled_at) for r in everything(store)}
    # With its mark, a declared task keeps its newest run that tells how it did (its manual
    # run: RetentionTally).
    assert kept == {(task, T0 + timedelta(minutes=m)) for task in left for m in (10, 20)} | {
        ("ops/removed", T0 + timedelta(minutes=30))
    }
    assert store.last_slots() == {task: T0 + timedelta(minutes=10) for task in left}


def test_a_declared_task_keeps_its_mark_behind_limits_and_age(store: RunStore) -> None:
    """The count limits are the owner's and keep the mark as before: ``declared`` is about
    the max age only. (A manual run between them goes; the newest, which tells how the task
    did, stays as the mark does: RetentionTally.)"""
    task = "ops/monthly"
    store.claim(rec(task, 0))
    store.claim(rec(task, 5, trigger=Trigger.MANUAL))
    store.claim(rec(task, 6, trigger=Trigger.MANUAL))

    assert store.prune({task: (0, 0)}, MAX_AGE, NOW, declared={task}) == 1

    assert [(r.scheduled_at, r.trigger) for r in everything(store)] == [
        (T0 + timedelta(minutes=6), Trigger.MANUAL),
        (T0, Trigger.SCHEDULE),
    ]
