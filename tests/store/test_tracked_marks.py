"""``RunStore.mark_tracked``: when a task was last added without catching any slot up.
``last_slots`` answers the later of that and the task's newest recorded slot; a mark never
moves back; retention forgets the old marks of tasks no longer declared. Every store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from reconciler.core.runs import RunStatus, Trigger
from reconciler.store import RunStore

from ._records import T0, rec

MINUTE = timedelta(minutes=1)


@pytest.fixture
def store(store_url: str, open_many: Callable[..., RunStore]) -> RunStore:
    return open_many(store_url)


def test_the_later_of_the_mark_and_the_newest_slot(store: RunStore) -> None:
    store.save_many(
        [
            rec("ops/readded", at=0, status=RunStatus.SUCCEEDED),
            rec("ops/ran-since", at=30, status=RunStatus.SUCCEEDED),
            rec("ops/manual", at=40, status=RunStatus.SUCCEEDED, trigger=Trigger.MANUAL),
        ]
    )
    assert store.last_slots() == {"ops/readded": T0, "ops/ran-since": T0 + 30 * MINUTE}

    marks = {task: T0 + 10 * MINUTE for task in ("ops/readded", "ops/ran-since", "ops/new")}
    store.mark_tracked({**marks, "ops/manual": T0 + 10 * MINUTE})

    expected = {
        "ops/readded": T0 + 10 * MINUTE,  # declared again after its run
        "ops/ran-since": T0 + 30 * MINUTE,  # a run after the mark
        "ops/new": T0 + 10 * MINUTE,  # never run
        "ops/manual": T0 + 10 * MINUTE,  # a manual run is no slot
    }
    assert store.last_slots() == expected
    assert store.last_slots(["ops/new", "ops/ran-since", "ops/none"]) == {
        "ops/new": T0 + 10 * MINUTE,
        "ops/ran-since": T0 + 30 * MINUTE,
    }


def test_a_mark_moves_forward_only(store: RunStore) -> None:
    store.mark_tracked({"ops/a": T0 + 10 * MINUTE, "ops/b": T0})
    store.mark_tracked({"ops/a": T0, "ops/b": T0 + 20 * MINUTE})  # a late write, and a re-add
    store.mark_tracked({})

    assert store.last_slots() == {"ops/a": T0 + 10 * MINUTE, "ops/b": T0 + 20 * MINUTE}


def test_many_tasks_marked_at_once(store: RunStore) -> None:
    since = {f"ops/t{n:05}": T0 + n * MINUTE for n in range(12_000)}

    store.mark_tracked(since)

    assert store.last_slots() == since
    asked = [f"ops/t{n:05}" for n in range(0, 12_000, 7)]
    assert store.last_slots(asked) == {task: since[task] for task in asked}


def test_retention_forgets_the_old_marks_of_tasks_no_longer_declared(store: RunStore) -> None:
    now = T0 + timedelta(days=40)
    store.mark_tracked({"ops/gone": T0, "ops/kept": T0, "ops/recent": now - MINUTE})

    store.prune({}, timedelta(days=30), now, declared={"ops/kept"})

    assert store.last_slots() == {"ops/kept": T0, "ops/recent": now - MINUTE}
    # Shared with crontasks that declare other tasks: an undeclared task may be another's.
    store.prune({}, timedelta(days=1), now, declared=set(), owner="h:1:x")
    assert store.last_slots() == {"ops/kept": T0, "ops/recent": now - MINUTE}
