"""In-memory :class:`~reconciler.store.base.RunStore`: a real implementation, not a mock.

It passes the same contract suite as the SQL store, so other components' tests can use it as a
faithful stand-in. Process-local and unbounded (apart from :meth:`prune`); thread-safe through
one lock, which is plenty for the reconciler's handful of writers. Linear scans everywhere:
fine for tests and small histories, which is all it is for.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from reconciler.core.runs import (
    LastOutcomes,
    RunRecord,
    RunStatus,
    Trigger,
    died,
    untold,
    without_untold,
)
from reconciler.core.status import is_failure
from reconciler.store.base import (
    UNTOLD_MAX,
    DuplicateRun,
    ExclusiveClaim,
    RetentionTally,
    StoreUnavailable,
    decide_exclusive,
    interrupted,
    last_success_order,
    slot_run,
    tells,
)
from reconciler.store.query import Cursor, RunPage, RunQuery
from reconciler.store.records import normalized, utc
from reconciler.store.retry_window import retry_may_follow

__all__ = ["MemoryRunStore"]

_Key = tuple[str, int]


def _newest_first(record: RunRecord) -> tuple[datetime, str, int]:
    return (record.scheduled_at, record.id, record.attempt)


def _later(known: datetime | None, at: datetime) -> datetime:
    return at if known is None else max(known, at)


def _last_successes(records: Iterable[RunRecord]) -> dict[str, str]:
    """Each task's last success (``base.last_success_order``): its run's id."""
    won: dict[str, tuple[datetime, datetime, str]] = {}
    for r in records:
        order = last_success_order(r)
        if order is not None and (r.task not in won or order > won[r.task]):
            won[r.task] = order
    return {task: order[2] for task, order in won.items()}


def _overwritten(old: RunRecord, record: RunRecord) -> RunRecord:
    """``old`` with the mutable fields of ``record`` (``RunStore.complete``)."""
    return dataclasses.replace(
        old,
        status=record.status,
        started_at=record.started_at,
        finished_at=record.finished_at,
        exit_code=record.exit_code,
        reason=record.reason,
        message=record.message,
        output=record.output,
        job=record.job,
    )


def _saved_over(record: RunRecord, stop_asked: bool) -> bool:
    """Whether ``save_many`` keeping marks may write over ``record``: not once
    ``mark_interrupted`` ended it (and no stop was asked of it): ``sql_running.SAVED_OVER``."""
    return stop_asked or not died(record)


def _ended(record: RunRecord) -> datetime | None:
    return record.finished_at or record.started_at


class MemoryRunStore:
    """Records live in a dict keyed by ``(id, attempt)``; stored records are already UTC."""

    keep_marks = False  # save_many leaves marked records so (``store.keep_marks``)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[_Key, RunRecord] = {}
        self._stops: dict[_Key, str] = {}  # stop requests by (id, attempt)
        self._beats: dict[str, tuple[datetime, float]] = {}  # instance -> (renewed, lease)
        self._tracked: dict[str, datetime] = {}  # task -> its mark (``mark_tracked``)
        self._closed = False

    def claim(self, record: RunRecord) -> None:
        record = normalized(record)
        key = (record.id, record.attempt)
        with self._lock:
            self._check_open()
            if key in self._records:
                raise DuplicateRun(record.id, record.attempt)
            self._records[key] = record

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        claimed: list[bool] = []
        for record in records:
            try:
                self.claim(record)
            except DuplicateRun:
                claimed.append(False)
            else:
                claimed.append(True)
        return claimed

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        records = [normalized(r) for r in records]
        tasks = {r.task for r in records}
        keys = {(r.id, r.attempt) for r in records}
        with self._lock:  # the look and the inserts: one step
            self._check_open()
            stored = [
                r
                for key, r in self._records.items()
                if r.task in tasks and (r.status is RunStatus.RUNNING or key in keys)
            ]
            answers = decide_exclusive(records, stored)
            for record, answer in zip(records, answers, strict=True):
                if answer.claimed:
                    self._records[(record.id, record.attempt)] = record
        return answers

    def complete(self, record: RunRecord) -> None:
        record = normalized(record)
        key = (record.id, record.attempt)
        with self._lock:
            self._check_open()
            old = self._records.get(key)
            if old is None:
                raise KeyError(key)
            self._records[key] = _overwritten(old, record)

    def save_many(self, records: Sequence[RunRecord]) -> list[RunRecord]:
        left: dict[_Key, RunRecord] = {}  # the marks that stand, by key
        for record in map(normalized, records):
            key = (record.id, record.attempt)
            with self._lock:  # the look and the write: one step, as a mark's
                self._check_open()
                old = self._records.get(key)
                if old is None:
                    self._records[key] = record
                elif not self.keep_marks or _saved_over(old, key in self._stops):
                    self._records[key] = _overwritten(old, record)
                    left.pop(key, None)
                elif not died(record):  # a record marked so itself is no mark left
                    left[key] = old
        return list(left.values())

    def get(self, run_id: str, attempt: int | None = None) -> RunRecord | None:
        with self._lock:
            self._check_open()
            if attempt is not None:
                return self._records.get((run_id, attempt))
            found = [r for (i, _), r in self._records.items() if i == run_id]
        return max(found, key=lambda r: r.attempt, default=None)

    def attempts(self, run_id: str) -> list[RunRecord]:
        with self._lock:
            self._check_open()
            found = [r for (i, _), r in self._records.items() if i == run_id]
        return sorted(found, key=lambda r: r.attempt)

    def query(self, q: RunQuery) -> RunPage:
        since = None if q.since is None else utc(q.since)
        until = None if q.until is None else utc(q.until)
        after = None if q.cursor is None else Cursor.decode(q.cursor).sort_key()
        with self._lock:
            self._check_open()
            matching = [
                r
                for r in self._records.values()
                if (q.task is None or r.task == q.task)
                and (q.status is None or r.status is q.status)
                and (q.trigger is None or r.trigger is q.trigger)
                and (since is None or r.scheduled_at >= since)
                and (until is None or r.scheduled_at < until)
                and (after is None or _newest_first(r) < after)
            ]
        matching.sort(key=_newest_first, reverse=True)
        items = matching[: q.limit]
        if not q.output:
            items = [dataclasses.replace(r, output="") for r in items]
        more = len(matching) > q.limit
        return RunPage(items, Cursor.after(items[-1]).encode() if more else None)

    def latest(self, task: str) -> RunRecord | None:
        with self._lock:
            self._check_open()
            return max(
                (r for r in self._records.values() if r.task == task),
                key=_newest_first,
                default=None,
            )

    def latest_many(self, tasks: Collection[str]) -> dict[str, RunRecord]:
        wanted = set(tasks)
        found: dict[str, RunRecord] = {}
        with self._lock:
            self._check_open()
            for r in self._records.values():
                if r.task in wanted and (
                    r.task not in found or _newest_first(r) > _newest_first(found[r.task])
                ):
                    found[r.task] = r
        return {task: dataclasses.replace(r, output="") for task, r in found.items()}

    def last_slots(self, tasks: Collection[str] | None = None) -> dict[str, datetime]:
        wanted = None if tasks is None else set(tasks)
        with self._lock:
            self._check_open()
            # A run's kind is its first attempt's (``slot_run``): its retries record ``retry``.
            slots = {r.id for r in self._records.values() if slot_run([(r.attempt, r.trigger)])}
            found: dict[str, datetime] = {}
            for r in self._records.values():
                if wanted is not None and r.task not in wanted:
                    continue
                if r.trigger is not Trigger.MANUAL and (
                    r.trigger is not Trigger.RETRY or r.id in slots
                ):
                    found[r.task] = max(r.scheduled_at, found.get(r.task, r.scheduled_at))
            for task, at in self._tracked.items():  # the later of the two, as the SQL store
                if wanted is None or task in wanted:
                    found[task] = max(at, found.get(task, at))
            return found

    def mark_tracked(self, since: Mapping[str, datetime]) -> None:
        with self._lock:
            self._check_open()
            for task, at in since.items():
                at = utc(at)
                self._tracked[task] = max(at, self._tracked.get(task, at))

    def last_outcomes(self, tasks: Collection[str]) -> dict[str, LastOutcomes]:
        wanted = set(tasks)
        with self._lock:
            self._check_open()
            found: dict[str, LastOutcomes] = {}
            # (finished_at, started_at) of the attempt that ended last, of those that started
            # and whose end is known (not one whose process died: its end is when it was
            # found dead); of two that ended at the same instant, the longer, as the SQL
            # store picks
            newest: dict[str, tuple[datetime, datetime]] = {}
            for r in self._records.values():
                if r.task not in wanted or r.finished_at is None:
                    continue
                last = found.get(r.task, LastOutcomes())
                if r.status is RunStatus.SUCCEEDED:
                    last = dataclasses.replace(last, success=_later(last.success, r.finished_at))
                elif is_failure(r):
                    last = dataclasses.replace(last, failure=_later(last.failure, r.finished_at))
                else:
                    continue
                found[r.task] = last
                ends = newest.get(r.task)
                if (
                    r.started_at is not None
                    and not died(r)
                    and (ends is None or (r.finished_at, ends[1]) > (ends[0], r.started_at))
                ):
                    newest[r.task] = (r.finished_at, r.started_at)
            for task, (finished, started) in newest.items():
                took = max((finished - started).total_seconds(), 0.0)
                found[task] = dataclasses.replace(found[task], duration=took)
            return found

    def running(self, task: str | None = None) -> list[RunRecord]:
        with self._lock:
            self._check_open()
            found = [
                r
                for r in self._records.values()
                if r.status is RunStatus.RUNNING and (task is None or r.task == task)
            ]
        return sorted(found, key=lambda r: (r.scheduled_at, r.id, r.attempt))

    def request_stop(self, run_ids: Collection[str], reason: str) -> int:
        wanted = set(run_ids)
        with self._lock:
            self._check_open()
            marked = [
                key
                for key, r in self._records.items()
                if r.id in wanted and r.status is RunStatus.RUNNING
            ]
            for key in marked:
                self._stops[key] = reason
        return len(marked)

    def stop_requests(
        self, owner: str, runs: Collection[tuple[str, int]] = ()
    ) -> list[tuple[str, int, str]]:
        here = set(runs)
        with self._lock:
            self._check_open()
            return sorted(
                (r.id, r.attempt, self._stops[key])
                for key, r in self._records.items()
                if key in self._stops
                and r.owner == owner
                and (r.status is RunStatus.RUNNING or key in here)
            )

    def take_over(self, run_id: str, attempt: int, owner: str) -> RunRecord | None:
        key = (run_id, attempt)
        with self._lock:
            self._check_open()
            record = self._records.get(key)
            if record is not None and record.status is RunStatus.RUNNING:
                record = self._records[key] = dataclasses.replace(record, owner=owner)
                self._stops.pop(key, None)
            return record

    def beat(self, instance: str, lease_seconds: float, now: datetime) -> None:
        with self._lock:
            self._check_open()
            self._beats[instance] = (utc(now), lease_seconds)

    def beats(self) -> dict[str, tuple[str, float]]:
        with self._lock:
            self._check_open()
            return {i: (when.isoformat(), lease) for i, (when, lease) in self._beats.items()}

    def forget_beats(self, instances: Collection[str]) -> None:
        with self._lock:
            self._check_open()
            for instance in instances:
                self._beats.pop(instance, None)

    def mark_interrupted(
        self,
        owners: Collection[str],
        now: datetime,
        *,
        keep: Collection[str] = (),
        note: str = "",
    ) -> list[RunRecord]:
        now = utc(now)
        dead = set(owners)
        kept = set(keep)
        done: list[RunRecord] = []
        with self._lock:
            self._check_open()
            for key, r in self._records.items():
                if r.id in kept:
                    continue
                if r.status is RunStatus.RUNNING and r.owner is not None and r.owner in dead:
                    self._records[key] = interrupted(r, now, note)
                    done.append(self._records[key])
        return sorted(done, key=_newest_first)

    def untold(
        self, since: datetime, after: tuple[datetime, str, int] | None = None
    ) -> list[RunRecord]:
        since = utc(since)
        last = None if after is None else (utc(after[0]), after[1], after[2])
        with self._lock:
            self._check_open()
            found = [
                (r.finished_at, r.id, r.attempt, r)
                for r in self._records.values()
                if untold(r) and r.finished_at is not None and r.finished_at >= since
            ]
        ordered = sorted(found, key=lambda f: f[:3])
        return [f[3] for f in ordered if last is None or f[:3] > last][:UNTOLD_MAX]

    def take_untold(self, run_ids: Collection[str]) -> list[RunRecord]:
        ids = set(run_ids)
        taken: list[RunRecord] = []
        with self._lock:
            self._check_open()
            for key, r in self._records.items():
                if r.id in ids and untold(r) and r.message is not None:
                    told = dataclasses.replace(r, message=without_untold(r.message))
                    self._records[key] = told
                    taken.append(told)
        return sorted(taken, key=_newest_first)

    def prune(
        self,
        limits: Mapping[str, tuple[int, int]],
        max_age: timedelta | None,
        now: datetime,
        *,
        busy: Container[str] = (),
        declared: Collection[str] | None = None,
        owner: str | None = None,
        retrying: Collection[str] | None = (),
    ) -> int:
        now = utc(now)
        tallies = {task: RetentionTally(*limit) for task, limit in limits.items()}
        with self._lock:
            self._check_open()
            runs: dict[str, list[RunRecord]] = {}
            for r in self._records.values():
                runs.setdefault(r.id, []).append(r)
            won = _last_successes(self._records.values())
            for task in tallies:
                tallies[task].expect_success(task in won)
            doomed: set[str] = set()
            marked: set[str] = set()  # tasks whose newest scheduled run was met
            worded: set[str] = set()  # tasks whose newest run that tells was met
            # Newest run first; within a run, latest attempt first (what RetentionTally expects).
            for run_id, group in sorted(
                runs.items(), key=lambda kv: (kv[1][0].scheduled_at, kv[0]), reverse=True
            ):
                group.sort(key=lambda r: r.attempt, reverse=True)
                statuses = [r.status for r in group]
                task = group[0].task
                tally = tallies.get(task)
                anchor = slot_run((r.attempt, r.trigger) for r in group)
                waits = run_id in busy
                told = tells((r.status, r.reason) for r in group)
                success = won.get(task) == run_id
                over_limit = tally is not None and not tally.keep(
                    statuses, anchor=anchor, busy=waits, tells=told, last_success=success
                )
                # The mark of missed slots (the task's newest scheduled run) stays however old,
                # as in sql_retention (Kept.keeps_mark), while the task is declared here or an
                # attempt of it is another instance's (a crontask sharing the store may
                # declare it, and be down).
                mark = anchor and task not in marked
                if anchor:
                    marked.add(task)
                # So do the newest run that says how the task did and the last success
                # (RetentionTally).
                word = told and task not in worded
                if told:
                    worded.add(task)
                if waits or RunStatus.RUNNING in statuses:
                    continue  # counted as the mark of missed slots, never deleted
                latest = group[0]
                old = max_age is not None and latest.scheduled_at < now - max_age
                # The age waits for a retry that may still come (see retry_may_follow).
                may_retry = (
                    retrying is None
                    or task in retrying
                    or (owner is not None and latest.owner not in (None, owner))
                )
                old = old and not (
                    may_retry
                    and retry_may_follow(
                        latest.status, latest.reason, latest.attempt, _ended(latest), now
                    )
                )
                others = owner is not None and any(r.owner not in (None, owner) for r in group)
                keeps = declared is None or task in declared or others
                too_old = old and not ((mark or word or success) and keeps)
                if over_limit or too_old:
                    doomed.add(run_id)
            if max_age is not None and declared is not None and owner is None:
                # As the SQL store (sql_tracked.forget_aged): an undeclared task's old mark.
                for task in [t for t, at in self._tracked.items() if at < now - max_age]:
                    if task not in declared:
                        del self._tracked[task]
            return self._delete(k for k in self._records if k[0] in doomed)

    def _delete(self, keys: Iterable[_Key]) -> int:
        victims = list(keys)
        for key in victims:
            del self._records[key]
        return len(victims)

    def ping(self) -> None:
        if self._closed:
            raise StoreUnavailable("the memory store is closed")

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the run store is closed")

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
