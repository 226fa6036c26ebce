"""An in-memory :class:`RuntimeView` for the API tests: real run store, hand-built task views."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from reconciler.controller.view import (
    AlreadyExists,
    IfMatch,
    Members,
    OwnedElsewhere,
    SourceRef,
    SourceStatus,
    TaskQuery,
    TaskView,
    Triggered,
    VersionMismatch,
    search_text,
)
from reconciler.core.desired import Definition, Location
from reconciler.core.model import CronTask
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunStore
from tests.helpers import task_doc

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def view(
    name: str = "t",
    namespace: str = "default",
    *,
    kind: str = "file",
    error: str | None = None,
    suspended: bool = False,
    zone: str = "UTC",
    running: tuple[str, ...] = (),
    last_run: RunRecord | None = None,
    **spec: Any,
) -> TaskView:
    document = CronTask.model_validate(
        task_doc(name, namespace, timeZone=zone, suspend=suspended, **spec)
    ).to_document()
    location = f"tasks/{name}.yaml:1:1" if kind == "file" else f"{namespace}/{name}"
    tz = ZoneInfo(zone)
    nexts = () if suspended else tuple((T0 + timedelta(hours=h)).astimezone(tz) for h in (1, 2))
    return TaskView(
        key=f"{namespace}/{name}",
        resource=document,
        source=SourceRef(kind, location, "abc123" if kind == "git" else None),
        error=error,
        suspended=suspended,
        running=running,
        next_runs=nexts,
        last_run=last_run,
    )


def record(
    task: str = "default/t",
    at: datetime = T0,
    status: RunStatus = RunStatus.SUCCEEDED,
    *,
    attempt: int = 1,
    trigger: Trigger = Trigger.SCHEDULE,
    output: str = "hello\n",
) -> RunRecord:
    finished = status.finished and status is not RunStatus.SKIPPED
    return RunRecord(
        id=run_id(task, at),
        task=task,
        scheduled_at=at,
        trigger=trigger,
        status=status,
        attempt=attempt,
        started_at=at + timedelta(seconds=1) if status is not RunStatus.SKIPPED else None,
        finished_at=at + timedelta(seconds=3) if finished else None,
        exit_code=0 if status is RunStatus.SUCCEEDED else (1 if finished else None),
        output=output,
    )


def definition(v: TaskView) -> Definition:
    """The definition ``v`` shows, as the desired state holds it."""
    return Definition.of(
        CronTask.model_validate(v.resource), Location(v.source.kind, v.source.location)
    )


class FakeRuntime:
    """Tasks in a dict; API-owned tasks validated with the real model; runs in a MemoryRunStore.

    ``trigger`` records a manual run as ``running``, or ``skipped`` (ConcurrencyForbid) while
    one is running, as the dispatcher does for the default policy, with the task's definition
    as it fired (``fired``).
    """

    def __init__(self, views: list[TaskView] | None = None) -> None:
        self._lock = threading.Lock()
        self.reset(views)

    def reset(self, views: list[TaskView] | None = None) -> None:
        """Back to ``views`` and an empty run store (a fresh start for the next scenario)."""
        self._store = MemoryRunStore()
        self.views: dict[str, TaskView] = {v.key: v for v in views or []}
        self.checks: dict[str, bool] = {"sources": True, "scheduler": True, "store": True}
        self.clock = T0 + timedelta(minutes=30)
        self.source_list: list[SourceStatus] = [
            SourceStatus("file", "tasks", tasks=len(self.views), errors=0)
        ]
        self.syncs: list[str] = []  # kinds asked to sync now; "git" is accepted if listed
        self.replicas: Members | None = None  # what members() answers (None: runs alone)
        self.versions = 0  # the last resource version handed out
        self.jobs = True  # what runs_jobs() answers

    @property
    def store(self) -> RunStore:
        return self._store

    def tasks(self, query: TaskQuery | None = None) -> list[TaskView]:
        q = query or TaskQuery()
        with self._lock:
            found = [
                v
                for _, v in sorted(self.views.items())
                if q.matches(v.key, v.source.kind, v.state, search_text(v.key, v.source.location))
            ]
        return found if q.limit is None else found[: q.limit]

    def task(self, key: str) -> TaskView | None:
        with self._lock:
            return self.views.get(key)

    def fired(self, record: RunRecord) -> Triggered:
        """``record`` (a run of a task shown now) as ``trigger`` returns it."""
        with self._lock:
            return Triggered.of(record, definition(self.views[record.task]))

    def trigger(self, key: str) -> Triggered:
        with self._lock:
            current = self.views[key]  # KeyError for an unknown task, as the protocol says
            self.clock += timedelta(seconds=1)
            at = self.clock
            base = RunRecord(
                id=run_id(key, at),
                task=key,
                scheduled_at=at,
                trigger=Trigger.MANUAL,
                status=RunStatus.RUNNING,
                started_at=at,
            )
            if current.running:
                skipped = dataclasses.replace(
                    base,
                    status=RunStatus.SKIPPED,
                    started_at=None,
                    finished_at=at,
                    reason="ConcurrencyForbid",
                    message=f"skipped: {current.running[0]} is still running "
                    "(concurrencyPolicy: Forbid)",
                )
                self._store.claim(skipped)
                return Triggered.of(skipped, definition(current))
            self._store.claim(base)
            self.views[key] = dataclasses.replace(current, running=(base.id,))
            return Triggered.of(base, definition(current))

    def create_api_task(self, task: CronTask) -> TaskView:
        with self._lock:
            if task.key in self.views and self.views[task.key].source.kind == "api":
                raise AlreadyExists(task.key)
            return self._store_api_task(task, None)[0]

    def put_api_task(
        self, task: CronTask, *, if_match: IfMatch | None = None
    ) -> tuple[TaskView, bool]:
        with self._lock:
            return self._store_api_task(task, if_match)

    def _store_api_task(self, task: CronTask, if_match: IfMatch | None) -> tuple[TaskView, bool]:
        existing = self.views.get(task.key)
        if existing is not None and existing.source.kind != "api":
            raise OwnedElsewhere(task.key, existing.source)
        _check(task.key, existing, if_match)
        self.versions += 1
        new = TaskView(
            key=task.key,
            resource=task.to_document(),
            source=SourceRef("api", task.key),
            error=None,
            suspended=task.spec.suspend,
            running=existing.running if existing else (),
            next_runs=() if task.spec.suspend else (T0 + timedelta(hours=1),),
            last_run=existing.last_run if existing else None,
            version=str(self.versions),
        )
        self.views[task.key] = new
        return new, existing is None

    def delete_api_task(self, key: str, *, if_match: IfMatch | None = None) -> None:
        with self._lock:
            existing = self.views[key]
            if existing.source.kind != "api":
                raise OwnedElsewhere(key, existing.source)
            _check(key, existing, if_match)
            del self.views[key]

    def readiness(self) -> dict[str, bool]:
        return dict(self.checks)

    def sources(self) -> list[SourceStatus]:
        return list(self.source_list)

    def job_watches(self) -> list[SourceStatus]:
        return []

    def members(self) -> Members | None:
        return self.replicas

    def sync_now(self, kind: str) -> bool:
        if not any(s.kind == kind for s in self.source_list):
            return False
        self.syncs.append(kind)
        return True

    def in_force(self) -> Mapping[str, Definition]:
        with self._lock:
            views = list(self.views.values())
        return {v.key: definition(v) for v in views}

    def runs_jobs(self) -> bool:
        return self.jobs

    def replacing(self, run_id: str) -> bool:
        return False  # no run here waits for one it replaces


def _check(key: str, existing: TaskView | None, if_match: IfMatch | None) -> None:
    current = existing.version if existing else None
    if if_match is not None and (
        current is None or ("*" not in if_match and current not in if_match)
    ):
        raise VersionMismatch(key, current)
