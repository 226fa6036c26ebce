"""The body of the cross-process claim race (importable by ``multiprocessing`` spawn children).

Each worker opens the store itself (so concurrent opens, i.e. concurrent migrations of a fresh
database, are part of the race), waits at the barrier so that every process claims at once, then
tries to claim every id and reports which ones it won.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import DuplicateRun, open_store

TASK = "ops/race"
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def race_record(i: int, owner: str) -> RunRecord:
    at = T0 + timedelta(minutes=i)
    return RunRecord(
        id=run_id(TASK, at),
        task=TASK,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        started_at=at,
        owner=owner,
    )


def claim_all(
    url: str, worker: int, n: int, barrier: Barrier, results: Queue[tuple[int, list[str]]]
) -> None:
    store = open_store(url)
    try:
        barrier.wait(timeout=60)
        won: list[str] = []
        # Half the workers go backwards so that they collide all the way, not just at the start.
        order = range(n) if worker % 2 == 0 else range(n - 1, -1, -1)
        for i in order:
            record = race_record(i, owner=f"worker-{worker}")
            try:
                store.claim(record)
            except DuplicateRun:
                continue
            won.append(record.id)
        results.put((worker, won))
    finally:
        store.close()
