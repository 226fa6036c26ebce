"""A crontask's prune keeps the mark of missed slots of a task another crontask recorded.

Crontasks without ``--ha`` may share a run store, each with its own ``--state-dir`` and tasks
(README). The max age keeps a task's newest run of a slot only while the task is declared, and
a crontask knows only its own tasks: A's prune took B's ``@monthly`` task for one removed and
deleted its last slot, 33 days old, so B, down over its next slot, started with nothing to
count missed slots from and never caught that slot up. ``owner`` (the instance that prunes)
keeps the mark of a task not declared here while an attempt of it is another instance's;
A's own removed task's still goes by age.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store import RunStore

from ._records import T0, everything, rec

NOW = T0 + timedelta(days=40)
MAX_AGE = timedelta(days=30)
A = "host-a:100:aaaa"  # the crontask that prunes
B = "host-b:200:bbbb"  # another one sharing the store, down for now


def _slot(task: str, at: int, *owners: str | None) -> list[RunRecord]:
    """A run of a slot of ``task``, ``at`` minutes after T0: an attempt per owner (a retry
    after the first)."""
    return [
        rec(
            task,
            at,
            RunStatus.FAILED if n < len(owners) else RunStatus.SUCCEEDED,
            attempt=n,
            trigger=Trigger.SCHEDULE if n == 1 else Trigger.RETRY,
            owner=owner,
        )
        for n, owner in enumerate(owners, start=1)
    ]


def test_another_crontask_s_mark_survives_and_a_removed_task_s_goes(store: RunStore) -> None:
    records = [
        *_slot("ops/monthly", 0, B),  # B's older run: goes by age like any run
        *_slot("ops/monthly", 10, B),  # B's mark, 40 days old
        *_slot("ops/a", 10, A),  # declared here
        *_slot("ops/removed", 10, A),  # A's own, no longer declared: goes
    ]
    store.save_many(records)

    deleted = store.prune({"ops/a": (3, 1)}, MAX_AGE, NOW, declared={"ops/a"}, owner=A)

    assert deleted == 2
    at = T0 + timedelta(minutes=10)
    assert store.last_slots() == {"ops/a": at, "ops/monthly": at}
    assert {(r.task, r.scheduled_at) for r in everything(store)} == {
        ("ops/a", at),
        ("ops/monthly", at),
    }


@pytest.mark.parametrize(
    ("owners", "stays"),
    [
        pytest.param((B,), True, id="another-s"),
        pytest.param((A,), False, id="this-one-s"),
        pytest.param((None,), False, id="nobody-s"),  # schema 0001: goes, as before
        pytest.param((A, B), True, id="retried-by-another"),
        pytest.param((B, A), True, id="retried-here"),
    ],
)
def test_the_mark_of_a_task_not_declared_here_stays_while_an_attempt_is_another_s(
    store: RunStore, owners: tuple[str | None, ...], stays: bool
) -> None:
    store.save_many(_slot("ops/monthly", 10, *owners))

    store.prune({}, MAX_AGE, NOW, declared=set(), owner=A)

    assert len(everything(store)) == (len(owners) if stays else 0)


def test_without_an_owner_declared_is_every_crontask_s(store: RunStore) -> None:
    """Replicas (``--ha``) all declare the same tasks: a task none declares goes by age,
    whoever recorded it."""
    store.save_many(_slot("ops/monthly", 10, B))

    assert store.prune({}, MAX_AGE, NOW, declared=set()) == 1

    assert store.last_slots() == {}


def test_two_crontasks_on_one_database(sql_url: str, open_many: Callable[[str], RunStore]) -> None:
    """As reported: B records its slot through its own connection, A prunes through its own,
    and B, started again, still finds its mark."""
    b = open_many(sql_url)
    b.save_many(_slot("ops/monthly", 10, B))
    a = open_many(sql_url)
    a.save_many(_slot("ops/a", 10, A))

    assert a.prune({"ops/a": (3, 1)}, MAX_AGE, NOW, declared={"ops/a"}, owner=A) == 0

    b.close()
    restarted = open_many(sql_url)
    assert restarted.last_slots()["ops/monthly"] == T0 + timedelta(minutes=10)
