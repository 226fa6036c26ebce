"""``claim_exclusive``, against every store: a run of a task is not claimed while another
owner's run of it is going, and the look and the claim are one step (Forbid and Replace across
replicas, whose runs of one task have different ids: the primary key cannot keep them apart)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store import RunStore
from reconciler.store.base import ExclusiveClaim

from ._records import rec

TASK = "ops/nightly-backup"


def running(at: int, owner: str, task: str = TASK, **fields: Any) -> RunRecord:
    return rec(task, at, RunStatus.RUNNING, owner=owner, **fields)


def test_a_run_of_another_owner_going_refuses_the_claim(store: RunStore) -> None:
    theirs = running(0, "b:2:y", output="tail of its output")
    store.claim(theirs)
    store.claim(rec(at=1, owner="b:2:y"))  # finished: no obstacle
    store.claim(running(2, "a:1:x"))  # our own: the caller's local policy judges it
    mine = running(3, "a:1:x", trigger=Trigger.MANUAL)
    answers = store.claim_exclusive(
        [
            mine,
            running(4, "a:1:x", task="ops/other"),
            running(4, "a:1:x", task="ops/other"),  # the same key twice: the first claims it
            running(5, "c:3:z"),  # a third owner: kept out by both
            running(2, "a:1:x"),  # exists
        ]
    )
    assert answers == [
        ExclusiveClaim(False, (dataclasses.replace(theirs, output=""),)),
        ExclusiveClaim(True),
        ExclusiveClaim(False),
        ExclusiveClaim(False, (dataclasses.replace(theirs, output=""), running(2, "a:1:x"))),
        ExclusiveClaim(False),
    ]
    assert store.get(mine.id) is None
    assert store.get(running(4, "a:1:x", task="ops/other").id) == running(
        4, "a:1:x", task="ops/other"
    )
    assert store.claim_exclusive([]) == []


def test_a_claim_goes_through_once_the_other_run_has_ended(store: RunStore) -> None:
    theirs = running(0, "b:2:y")
    store.claim(theirs)
    store.complete(theirs.finish(RunStatus.SUCCEEDED, finished_at=theirs.scheduled_at))
    mine = running(1, "a:1:x")
    assert store.claim_exclusive([mine]) == [ExclusiveClaim(True)]
    assert store.get(mine.id) == mine
    # Claimed but not running (a skip, as claim_many may write): it keeps nobody out.
    store.complete(mine.finish(RunStatus.SKIPPED, finished_at=mine.scheduled_at))
    assert store.claim_exclusive([running(2, "b:2:y")]) == [ExclusiveClaim(True)]


def _race(stores: list[RunStore], task: str) -> list[ExclusiveClaim]:
    """One thread per store object (a replica each), claiming a run of ``task`` at once."""
    barrier = threading.Barrier(len(stores))
    answers: list[ExclusiveClaim] = []
    errors: list[BaseException] = []

    def claim(n: int, store: RunStore) -> None:
        try:
            barrier.wait(timeout=30)
            answers.extend(store.claim_exclusive([running(n, f"r{n}:1:x", task=task)]))
        except BaseException as err:  # surfaced below; a thread cannot fail the test itself
            errors.append(err)

    threads = [threading.Thread(target=claim, args=(n, s)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    return answers


def test_replicas_claiming_runs_of_one_task_at_once_claim_one(store: RunStore) -> None:
    for round_ in range(20):
        answers = _race([store] * 6, f"ops/race-{round_}")
        assert sum(a.claimed for a in answers) == 1, round_


def test_replicas_on_one_database_claiming_at_once_claim_one(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    """Store objects of their own (each its own connections), as replicas have."""
    stores = [open_many(sql_url) for _ in range(6)]
    for round_ in range(20):
        answers = _race(stores, f"ops/race-{round_}")
        assert sum(a.claimed for a in answers) == 1, round_
        assert len(stores[0].running(f"ops/race-{round_}")) == 1
