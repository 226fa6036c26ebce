"""What the run history says of a task's finished Jobs: which go (``doomed``), by the task's
history limits when it is declared, and, when it is removed, only those whose run this
installation's run store records (another crontask sharing the Job namespace keeps its own).
Pure but for ``histories_of``, the one read of the store, run in the recorder's thread."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.core.desired import Definition
from reconciler.core.jobs import finished, is_deleting, run_of
from reconciler.store.base import RetentionClass, RunQuery, RunStore, retention_class


@dataclasses.dataclass(frozen=True)
class Past:
    """A run of a task as the run store has it: its slot, the bucket of the history limits
    its latest attempt is in (None: running), and who recorded its attempts."""

    scheduled_at: datetime
    bucket: RetentionClass | None
    owners: frozenset[str | None]


def over(job: dict[str, Any], busy: Collection[str]) -> bool:
    """A finished Job of a run that is over, not being deleted: one clean-up may delete."""
    run = run_of(job)
    over = run is not None and run.run_id not in busy
    return over and finished(job) is not None and not is_deleting(job)


def limits_of(definition: Definition | None) -> tuple[int, int] | None:
    spec = definition.task.spec if definition is not None else None
    return (
        None
        if spec is None
        else (spec.successful_runs_history_limit, spec.failed_runs_history_limit)
    )


def histories_of(
    store: RunStore,
    found: dict[str, tuple[list[dict[str, Any]], tuple[int, int] | None]],
    busy: Collection[str],
) -> dict[str, dict[str, Past]]:
    """The runs the store has of each task of ``found`` (blocking, one thread hop for all):
    of a removed task, those of its Jobs' slots; of a declared one, the newest, up to where
    they alone fill its limits (every run older is beyond them, whatever else counts)."""
    histories: dict[str, dict[str, Past]] = {}
    for key, (jobs, limits) in found.items():
        slots = [run.scheduled_at for job in jobs if (run := run_of(job)) is not None]
        since, until = min(slots), None
        if limits is None:
            until = max(slots) + timedelta(microseconds=1)
        left = {"succeeded": limits[0], "failed": limits[1]} if limits is not None else None
        runs: dict[str, Past] = histories.setdefault(key, {})
        cursor = None
        while True:
            page = store.query(
                RunQuery(task=key, since=since, until=until, limit=500, cursor=cursor, output=False)
            )
            for record in page.items:
                if record.id in busy:
                    continue  # not over: neither counts nor goes
                past = runs.get(record.id)
                if past is not None:  # an earlier attempt: the latest came first
                    owners = past.owners | {record.owner}
                    runs[record.id] = dataclasses.replace(past, owners=owners)
                    continue
                bucket = retention_class(record.status)
                runs[record.id] = Past(record.scheduled_at, bucket, frozenset({record.owner}))
                if left is not None and bucket in left:
                    left[bucket] -= 1
            cursor = page.next_cursor
            if cursor is None or (left is not None and max(left.values()) <= 0):
                break
    return histories


def doomed(
    done: list[dict[str, Any]],
    limits: tuple[int, int] | None,
    history: dict[str, Past],
    ours: Callable[[Past], bool],
) -> list[dict[str, Any]]:
    """Which of a task's finished Jobs ``done`` go. A removed task's (``limits`` None): those
    whose run is in ``history`` and ``ours``: a Job of the same name from another crontask
    (one sharing the Job namespace) is never this one's to delete. A declared task's: as the
    run history does, a run (all its attempts' Jobs) counts as its latest attempt says (the
    store's record, else its latest Job) and goes whole, the newest runs kept; runs without
    a Job count too, so a job task made a command task sees its last Jobs go in time."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for job in done:
        groups.setdefault(_run_id(job), []).append(job)
    if limits is None:
        return [j for run, g in groups.items() if run in history and ours(history[run]) for j in g]
    order: dict[str, tuple[datetime, str, str | None]] = {}
    for run, past in history.items():
        order[run] = past.scheduled_at, run, past.bucket
    for run, group in groups.items():
        latest = max(group, key=_order)
        kind = "succeeded" if (finished(latest) or ("Failed",))[0] == "Complete" else "failed"
        stored = history.get(run)
        bucket = kind if stored is None or stored.bucket == "skipped" else stored.bucket
        order[run] = _order(latest)[0], run, bucket
    left = {"succeeded": limits[0], "failed": limits[1]}
    gone: list[dict[str, Any]] = []
    for _, run, bucket in sorted(order.values(), reverse=True):
        if bucket not in left:
            continue  # running, or a skip: neither counts nor goes
        if left[bucket] > 0:
            left[bucket] -= 1
        else:
            gone.extend(groups.get(run, ()))
    return gone


def _run_id(job: dict[str, Any]) -> str:
    run = run_of(job)
    return run.run_id if run is not None else ""


def _order(job: dict[str, Any]) -> tuple[datetime, int]:
    run = run_of(job)
    if run is None:
        return datetime.min.replace(tzinfo=UTC), 0
    return run.scheduled_at, run.attempt
