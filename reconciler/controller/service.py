"""The running reconciler as its interfaces see it: the ``RuntimeView`` implementation.

Every method may be called from any thread (the API runs its handlers in worker threads).
State that the event loop mutates (the scheduler's jobs, the running runs, the desired state)
is read on the loop in one short snapshot; anything slow (fire-time computation, store reads,
file writes) happens in the calling thread.

Tasks created through the API are YAML files under ``<state dir>/api-tasks/NAMESPACE/NAME.yaml``
read by a directory source of kind ``api``: they survive restarts and are reconciled like any
other source, and they can be inspected and backed up like any file. :class:`ApiTaskFiles` is
the only code that touches them, behind the small :class:`ApiTasks` interface, and it refuses
any key whose file would not be a plain file directly under its namespace folder. Writes of
one key are serialised (a lock per key held from the check to the change being in force), so
concurrent writers see each other's effects in order: a second create is ``AlreadyExists``,
a write conditional on a version that has moved on is ``VersionMismatch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import yaml
from pydantic import ValidationError

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.view import (
    AlreadyExists,
    FieldError,
    IfMatch,
    InvalidDefinition,
    OwnedElsewhere,
    SourceRef,
    SourceStatus,
    TaskQuery,
    TaskView,
    VersionMismatch,
    task_state,
)
from reconciler.core.desired import Definition, DesiredState
from reconciler.core.model import DNS1123_LABEL, CronTask
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
        self._api: ApiTasks = ApiTaskFiles(api_dir)
        self._locks = KeyedLocks()
        self._sources = list(sources)
        self._sync_requested = sync_requested
        self.started = False  # the first pass has been applied
        self._last_runs: dict[str, RunRecord] = {}
        dispatcher.subscribe(self._remember)

    @property
    def store(self) -> RunStore:
        return self._store

    # -- reads ---------------------------------------------------------------------------

    def tasks(self, query: TaskQuery | None = None) -> list[TaskView]:
        q = query or TaskQuery()

        def scheduled() -> tuple[dict[str, Definition], DesiredState]:
            # A C-level copy on the loop; the sorting, filtering and views are made here.
            return dict(self._scheduler.owned()), self._reconciler.desired

        owned, desired = self._on_loop(scheduled)
        problems = _problems(desired)
        picked: list[str] = []
        for key in sorted(owned):
            definition = owned[key]
            problem = definition.error or problems.get(key)
            state = task_state(definition.task.spec.suspend, problem)
            if q.matches(key, definition.location.source, state):
                picked.append(key)
                if q.limit is not None and len(picked) >= q.limit:
                    break
        entries = self._on_loop(self._snapshot, picked)
        return [
            self._view(entries[k], runs=1, last=self._last_runs.get(k))
            for k in picked
            if k in entries
        ]

    def task(self, key: str) -> TaskView | None:
        entries = self._on_loop(self._snapshot, [key])
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

    def create_api_task(self, document: Mapping[str, Any]) -> TaskView:
        task = _validated(document)
        with self._writing(task.key):
            self._check_owner(task.key)
            if self._api.version(task.key) is not None:
                raise AlreadyExists(task.key)
            return self._write(task)

    def put_api_task(
        self, document: Mapping[str, Any], *, if_match: IfMatch | None = None
    ) -> tuple[TaskView, bool]:
        task = _validated(document)
        with self._writing(task.key):
            self._check_owner(task.key)
            current = self._api.version(task.key)
            _check_version(task.key, current, if_match)
            return self._write(task), current is None

    def delete_api_task(self, key: str, *, if_match: IfMatch | None = None) -> None:
        with self._writing(key):
            current = self._api.version(key)
            if current is None:
                self._check_owner(key)
                raise KeyError(key)
            _check_version(key, current, if_match)
            hint = self._api.remove(key)
            self._apply({hint})

    # -- details -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self, key: str) -> Iterator[None]:
        with self._locks.hold(key, ON_LOOP_TIMEOUT):
            yield

    def _write(self, task: CronTask) -> TaskView:
        """Under the key's lock: persist ``task``, wait for it to be in force, and return it."""
        hint = self._api.write(task.key, yaml.safe_dump(task.to_document(), sort_keys=False))
        self._apply({hint})
        view = self.task(task.key)
        if view is None or view.source.kind != API_KIND:
            # Another source declared the key between the owner check and the pass.
            self._check_owner(task.key)
            raise RuntimeError(f"{task.key} is not in force after it was written")
        return view

    def _snapshot(self, keys: Sequence[str]) -> dict[str, _Entry]:
        """On the loop: what each task runs on and why it may be flagged."""
        owned = self._scheduler.owned()
        problems = _problems(self._reconciler.desired)
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
        version = None
        if location.source == API_KIND:
            source = SourceRef(API_KIND, f"/api/v1/tasks/{definition.key}")
            version = self._api.version(definition.key)
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
            version=version,
        )

    def _check_owner(self, key: str) -> None:
        def owner() -> Definition | None:
            return self._reconciler.desired.tasks.get(key) or self._scheduler.owned().get(key)

        current = self._on_loop(owner)
        if current is not None and current.location.source != API_KIND:
            location = current.location
            raise OwnedElsewhere(key, SourceRef(location.source, str(location), location.revision))

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


def _validated(document: Mapping[str, Any]) -> CronTask:
    try:
        return CronTask.model_validate(dict(document))
    except ValidationError as err:
        raise InvalidDefinition(
            [
                FieldError(tuple(e["loc"]), str(e["msg"]).removeprefix("Value error, "))
                for e in err.errors(include_url=False)
            ]
        ) from None


def _check_version(key: str, current: str | None, if_match: IfMatch | None) -> None:
    if if_match is None:
        return
    if current is None or ("*" not in if_match and current not in if_match):
        raise VersionMismatch(key, current)


def _problems(desired: DesiredState) -> dict[str, str]:
    """Each flagged key's first definition error or conflict."""
    problems: dict[str, str] = {}
    for error in desired.errors:
        if error.key:
            problems.setdefault(error.key, str(error))
    for conflict in desired.conflicts:
        problems.setdefault(conflict.key, str(conflict))
    return problems


class KeyedLocks:
    """One lock per key, made when first held and dropped when nobody holds or waits for it
    (so the table stays as small as the number of keys being written right now)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[None]:
        """Hold ``key``'s lock; TimeoutError if it is not free within ``timeout`` seconds."""
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            lock = lock or threading.Lock()
            self._locks[key] = (lock, users + 1)
        try:
            if not lock.acquire(timeout=timeout):
                raise TimeoutError(f"another write of {key} took longer than {timeout:g}s")
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                users = self._locks[key][1] - 1
                if users:
                    self._locks[key] = (lock, users)
                else:
                    del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class ApiTasks(Protocol):
    """Where the API's own tasks are kept: the API source reads them, only the API writes them.

    Callers serialise the writes of one key (``Service`` holds a lock per key), so each method
    only has to be atomic in what it leaves behind: a reader sees the old text or the new one.
    Each write returns the hint to pass to a reconcile pass of the ``api`` source. A key that
    is not ``NAMESPACE/NAME`` of two DNS-1123 labels is a ValueError: nothing is touched.
    """

    def version(self, key: str) -> str | None:
        """The version of the stored text (changes with every change of it); None if absent."""
        ...

    def write(self, key: str, text: str) -> str: ...

    def remove(self, key: str) -> str:
        """Remove the key's text; FileNotFoundError if there is none."""
        ...


_LABEL: Final = re.compile(DNS1123_LABEL)
_LABEL_MAX: Final = 63
_VERSION_CHARS: Final = 20  # 80 bits of SHA-256: a resource version, not a signature


class ApiTaskFiles:
    """:class:`ApiTasks` as files: ``ROOT/NAMESPACE/NAME.yaml``, written atomically (a temporary
    file renamed over the old one). The version is a digest of the file's bytes, so it holds
    across restarts and for a file edited by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file of ``key``. Defence in depth behind the API's own checks: a key that is not
        two DNS-1123 labels, or whose file would resolve outside ``ROOT`` (a symlinked
        namespace folder), is a ValueError."""
        namespace, name = split_key(key)
        for label in (namespace, name):
            if len(label) > _LABEL_MAX or _LABEL.fullmatch(label) is None:
                raise ValueError(f"not a task key: {key[:200]!r}")
        path = self.root / namespace / f"{name}.yaml"
        root = self.root.resolve()
        if path.resolve().parent != root / namespace:
            raise ValueError(f"the file of {key} would leave {root}")
        return path

    def version(self, key: str) -> str | None:
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        return hashlib.sha256(data).hexdigest()[:_VERSION_CHARS]

    def write(self, key: str, text: str) -> str:
        path = self.path(key)
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
        return str(path.absolute())

    def remove(self, key: str) -> str:
        path = self.path(key)
        path.unlink()
        return str(path.absolute())
