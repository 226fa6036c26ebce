"""Record factories and reference models shared by the store tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.core.status import is_failure
from reconciler.store import RunQuery, RunStore
from reconciler.store.base import FAILED_STATUSES
from reconciler.store.retry_window import MOST_ATTEMPTS, NO_RETRY_REASONS, RETRY_WINDOW

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def rec(
    task: str = "ops/nightly-backup",
    at: datetime | int = 0,
    status: RunStatus = RunStatus.SUCCEEDED,
    *,
    attempt: int = 1,
    trigger: Trigger = Trigger.SCHEDULE,
    owner: str | None = "host:1:boot",
    **fields: Any,
) -> RunRecord:
    """A record of ``task`` for the slot ``at`` (a datetime, or minutes after :data:`T0`).

    Finished statuses get ``started_at``/``finished_at`` unless given.
    """
    when = T0 + timedelta(minutes=at) if isinstance(at, int) else at
    base = RunRecord(
        id=run_id(task, when),
        task=task,
        scheduled_at=when,
        trigger=trigger,
        status=status,
        attempt=attempt,
        started_at=when + timedelta(seconds=1),
        finished_at=None if status is RunStatus.RUNNING else when + timedelta(seconds=5),
        exit_code=None if status is RunStatus.RUNNING else 0,
        owner=owner,
    )
    return dataclasses.replace(base, **fields)


def sort_key(record: RunRecord) -> tuple[datetime, str, int]:
    return (record.scheduled_at, record.id, record.attempt)


def newest_first(records: list[RunRecord]) -> list[RunRecord]:
    return sorted(records, key=sort_key, reverse=True)


def walk(store: RunStore, q: RunQuery) -> list[list[RunRecord]]:
    pages: list[list[RunRecord]] = []
    cursor: str | None = None
    while True:
        page = store.query(dataclasses.replace(q, cursor=cursor))
        assert len(page.items) <= q.limit
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        assert page.items, "a next_cursor promises more items"
        cursor = page.next_cursor


def reference_prune(
    records: list[RunRecord],
    limits: dict[str, tuple[int, int]],
    max_age: timedelta | None,
    now: datetime,
    retrying: Collection[str] = (),
) -> list[RunRecord]:
    """The retention rules, spelled out the slow way: what should survive (``retrying``: the
    tasks with a retry limit, whose failed runs the max age waits for)."""
    runs: dict[str, list[RunRecord]] = {}
    for r in records:
        runs.setdefault(r.id, []).append(r)
    doomed: set[str] = set()
    seen: dict[tuple[str, str], int] = {}
    anchored: set[str] = set()  # tasks whose newest run that is not only manual was seen
    told: set[str] = set()  # tasks whose newest run that says how the task did was seen
    # Each task's last success, as last_outcomes exports it: the run of its succeeded attempt
    # that finished last (of two that finished at the same instant, the newer run).
    won: dict[str, tuple[datetime, datetime, str]] = {}
    for r in records:
        if r.status is RunStatus.SUCCEEDED and r.finished_at is not None:
            won[r.task] = max(
                won.get(r.task, (r.finished_at, r.scheduled_at, r.id)),
                (r.finished_at, r.scheduled_at, r.id),
            )
    for run_id_, attempts in sorted(
        runs.items(), key=lambda kv: (kv[1][0].scheduled_at, kv[0]), reverse=True
    ):
        latest = max(attempts, key=lambda r: r.attempt)
        # The mark of missed slots (RunStore.last_slots) stays, whatever the limits say.
        # A run is manual when its first attempt is, whatever its retries record.
        manual = any(r.attempt == 1 and r.trigger is Trigger.MANUAL for r in attempts)
        anchor = (
            latest.task not in anchored
            and not manual
            and any(r.trigger is not Trigger.MANUAL for r in attempts)
        )
        if anchor:
            anchored.add(latest.task)
        # The newest run that succeeded or failed (not by a shutdown) stays whatever the limits
        # say: a restart reads the task's state from it (base.RetentionTally).
        last_word = latest.task not in told and any(
            r.status is RunStatus.SUCCEEDED or (r.status in FAILED_STATUSES and is_failure(r))
            for r in attempts
        )
        if last_word:
            told.add(latest.task)
        # So does its last success (the metrics' alerts).
        last_success = latest.task in won and won[latest.task][2] == run_id_
        kept = anchor or last_word or last_success
        if any(r.status is RunStatus.RUNNING for r in attempts):
            continue
        # By age, unless a retry may still come (whoever's run it is).
        old = max_age is not None and latest.scheduled_at < now - max_age
        waits = latest.task in retrying and _retry_may_come(latest, now)
        if old and not kept and not waits:
            doomed.add(run_id_)
        if latest.task not in limits:
            continue
        succeeded_limit, failed_limit = limits[latest.task]
        if latest.status is RunStatus.SUCCEEDED:
            bucket, limit = "succeeded", succeeded_limit
        elif latest.status in FAILED_STATUSES:
            bucket, limit = "failed", failed_limit
        else:
            bucket, limit = "skipped", failed_limit
        seen[latest.task, bucket] = seen.get((latest.task, bucket), 0) + 1
        if seen[latest.task, bucket] > limit and not kept:
            doomed.add(run_id_)
    return [r for r in records if r.id not in doomed]


def _retry_may_come(latest: RunRecord, now: datetime) -> bool:
    """Whether the max age waits for a retry of the run whose latest attempt is ``latest``:
    it failed or timed out, for no reason that ends the run, not as the last attempt any
    limit allows, and ended within the longest backoff and its margin."""
    ended = latest.finished_at or latest.started_at
    return (
        latest.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
        and latest.reason not in NO_RETRY_REASONS
        and latest.attempt < MOST_ATTEMPTS
        and ended is not None
        and now - ended < RETRY_WINDOW
    )


def everything(store: RunStore) -> list[RunRecord]:
    return [r for page in walk(store, RunQuery(limit=1000)) for r in page]
