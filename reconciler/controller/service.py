"""The running reconciler as its interfaces see it: the ``RuntimeView`` implementation.

Every method may be called from any thread (the API runs its handlers in worker threads).
State that the event loop mutates (the scheduler's jobs, the running runs, the desired state)
is read on the loop in one short snapshot; anything slow (fire-time computation, store reads,
file writes) happens in the calling thread.

Tasks created through the API are YAML files under ``<state dir>/api-tasks/NAMESPACE/NAME.yaml``
read by a directory source of kind ``api``: they survive restarts and are reconciled like any
other source, and they can be inspected and backed up like any file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.view import (
    FieldError,
    InvalidDefinition,
    OwnedElsewhere,
    SourceRef,
    SourceStatus,
    TaskView,
)
from reconciler.core.desired import Definition
from reconciler.core.model import CronTask
from reconciler.core.runs import RunRecord, RunStatus, Trigger, split_key
from reconciler.scheduling.base import Scheduler, schedule_of
from reconciler.sources.base import Source
from reconciler.sources.files import DirectorySource
from reconciler.sources.git import GitSource
from reconciler.sources.kubernetes import KubernetesSource
from reconciler.store.base import RunStore

T = TypeVar("T")

Reconcile = Callable[[Mapping[str, Collection[str]]], Coroutine[Any, Any, object]]
API_KIND = "api"
NEXT_RUNS = 5
ON_LOOP_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    definition: Definition
    problem: str | None
    running: tuple[str, ...]


class Service:
    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        store: RunStore,
        scheduler: Scheduler,
        dispatcher: Dispatcher,
        reconciler: Reconciler,
        reconcile: Reconcile,
        api_dir: Path,
        sources: Sequence[Source] = (),
        sync_requested: Callable[[str], bool] | None = None,
    ) -> None:
        self._loop = loop
        self._store = store
        self._scheduler = scheduler
        self._dispatcher = dispatcher
        self._reconciler = reconciler
        self._reconcile = reconcile
        self.api_dir = api_dir
        self._sources = list(sources)
        self._sync_requested = sync_requested
        self.started = False  # the first pass has been applied
        self._last_runs: dict[str, RunRecord] = {}
        dispatcher.subscribe(self._remember)

    @property
    def store(self) -> RunStore:
        return self._store

    # -- reads ---------------------------------------------------------------------------

    def tasks(self) -> list[TaskView]:
        entries = self._on_loop(self._snapshot, None)
        return [
            self._view(entry, runs=1, last=self._last_runs.get(k)) for k, entry in entries.items()
        ]

    def task(self, key: str) -> TaskView | None:
        entries = self._on_loop(self._snapshot, key)
        if key not in entries:
            return None
        return self._view(entries[key], runs=NEXT_RUNS, last=self._store.latest(key))

    def readiness(self) -> dict[str, bool]:
        try:
            self._store.ping()
            store_ok = True
        except Exception:
            store_ok = False
        return {
            "sources": self.started,
            "scheduler": self.started,
            "store": store_ok,
        }

    def sources(self) -> list[SourceStatus]:
        desired = self._reconciler.desired  # replaced whole by each pass: a consistent view
        tasks: dict[str, int] = {}
        errors: dict[str, int] = {}
        for definition in desired.tasks.values():
            tasks[definition.location.source] = tasks.get(definition.location.source, 0) + 1
        for kind in [e.location.source for e in desired.errors] + [
            c.winner.source for c in desired.conflicts
        ]:
            errors[kind] = errors.get(kind, 0) + 1
        found = []
        for source in self._sources:
            n_tasks, n_errors = tasks.get(source.kind, 0), errors.get(source.kind, 0)
            if isinstance(source, GitSource):
                status = source.status()
                found.append(
                    SourceStatus(
                        kind=source.kind,
                        location=f"{status.url}#{status.ref}",
                        revision=status.applied_revision,
                        attempted_revision=status.attempted_revision,
                        last_sync=status.last_sync,
                        last_attempt=status.last_attempt,
                        last_error=status.last_error,
                        tasks=n_tasks,
                        errors=n_errors,
                    )
                )
            elif isinstance(source, KubernetesSource):
                informer = source.informer
                found.append(
                    SourceStatus(
                        kind=source.kind,
                        location=source.location,
                        tasks=n_tasks,
                        errors=n_errors,
                        last_error=informer.last_error,
                    )
                )
            elif isinstance(source, DirectorySource):
                roots = ", ".join(str(r) for r in source.roots)
                found.append(SourceStatus(source.kind, roots, tasks=n_tasks, errors=n_errors))
        return found

    def sync_now(self, kind: str) -> bool:
        return self._sync_requested(kind) if self._sync_requested else False

    # -- actions -------------------------------------------------------------------------

    def trigger(self, key: str) -> RunRecord:
        def fire() -> RunRecord:
            definition = self._scheduler.owned().get(key)
            if definition is None:
                raise KeyError(key)
            # A manual run's slot is the moment it was asked for; its id stays unique.
            return self._dispatcher.fire(definition, datetime.now(UTC), Trigger.MANUAL)

        return self._on_loop(fire)

    def put_api_task(self, document: Mapping[str, Any]) -> tuple[TaskView, bool]:
        try:
            task = CronTask.model_validate(dict(document))
        except ValidationError as err:
            raise InvalidDefinition(
                [
                    FieldError(tuple(e["loc"]), str(e["msg"]).removeprefix("Value error, "))
                    for e in err.errors(include_url=False)
                ]
            ) from None
        self._check_owner(task.key)
        path = self._path(task.key)
        created = not path.exists()
        _write_atomically(path, yaml.safe_dump(task.to_document(), sort_keys=False))
        self._apply({str(path.absolute())})
        view = self.task(task.key)
        if view is None:  # e.g. a conflict made another definition win
            raise KeyError(task.key)
        return view, created

    def delete_api_task(self, key: str) -> None:
        path = self._path(key)
        if not path.exists():
            self._check_owner(key)
            raise KeyError(key)
        path.unlink()
        self._apply({str(path.absolute())})

    # -- details -------------------------------------------------------------------------

    def _snapshot(self, only: str | None) -> dict[str, _Entry]:
        """On the loop: what each task runs on and why it may be flagged."""
        owned = self._scheduler.owned()
        desired = self._reconciler.desired
        problems: dict[str, str] = {}
        for error in desired.errors:
            if error.key:
                problems.setdefault(error.key, str(error))
        for conflict in desired.conflicts:
            problems.setdefault(conflict.key, str(conflict))
        keys = [only] if only is not None else list(owned)
        entries: dict[str, _Entry] = {}
        for key in keys:
            definition = owned.get(key)
            if definition is None:
                continue
            problem = definition.error or problems.get(key)
            running = tuple(r.id for r in self._dispatcher.active(key))
            entries[key] = _Entry(definition, problem, running)
        return entries

    def _view(self, entry: _Entry, *, runs: int, last: RunRecord | None) -> TaskView:
        definition = entry.definition
        spec = definition.task.spec
        location = definition.location
        if location.source == API_KIND:
            source = SourceRef(API_KIND, f"/api/v1/tasks/{definition.key}")
        else:
            source = SourceRef(location.source, str(location), location.revision)
        next_runs: tuple[datetime, ...] = ()
        if not spec.suspend:
            next_runs = tuple(schedule_of(definition).fire_times(datetime.now(UTC), runs))
        return TaskView(
            key=definition.key,
            resource=definition.task.to_document(),
            source=source,
            error=entry.problem,
            suspended=spec.suspend,
            running=entry.running,
            next_runs=next_runs,
            last_run=last,
        )

    def _check_owner(self, key: str) -> None:
        def owner() -> Definition | None:
            return self._reconciler.desired.tasks.get(key) or self._scheduler.owned().get(key)

        current = self._on_loop(owner)
        if current is not None and current.location.source != API_KIND:
            location = current.location
            raise OwnedElsewhere(key, SourceRef(location.source, str(location), location.revision))

    def _path(self, key: str) -> Path:
        namespace, name = split_key(key)
        return self.api_dir / namespace / f"{name}.yaml"

    def _apply(self, paths: set[str]) -> None:
        """Run a pass for the API source now and wait for it."""
        future = asyncio.run_coroutine_threadsafe(self._reconcile({API_KIND: paths}), self._loop)
        future.result(ON_LOOP_TIMEOUT)

    def _remember(self, record: RunRecord) -> None:
        if record.status is not RunStatus.RUNNING:
            self._last_runs[record.task] = record

    def _on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn`` on the event loop and return its result (from any other thread)."""
        result: Future[T] = Future()

        def call() -> None:
            try:
                result.set_result(fn(*args))
            except BaseException as err:
                result.set_exception(err)

        self._loop.call_soon_threadsafe(call)
        return result.result(ON_LOOP_TIMEOUT)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
