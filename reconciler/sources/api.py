"""The API source: tasks created through the REST API, a source of their own.

Unlike a folder, the API both writes and reads its tasks: :class:`ApiSource` keeps them in an
:class:`ApiTaskStore` and is read by the reconciler like any other source (kind ``api``). Two
stores exist: :class:`ApiTaskFiles` (the default: YAML files under
``<state dir>/api-tasks/NAMESPACE/NAME.yaml``, which survive restarts and can be inspected and
backed up like any file) and, with replicas, the ``api_tasks`` table of the shared run store
(``reconciler.store.api_tasks``), so that every replica sees the same tasks.

Contract of a store (the rules are ``reconciler.core.api_tasks``): a key that is not two
DNS-1123 labels is a ValueError and touches nothing; ``write`` and ``remove`` are atomic in what
they leave behind and check their expectation atomically (``expect``: ``MISSING`` to create
only, a version to change only that version, None for either).

A stored task is at most :data:`MAX_TEXT` bytes of UTF-8, as a task file of a folder is: a
writer checks with :func:`check_size` before it stores anything (:class:`TaskTooLarge`), and a
stored text over the limit is never read cut short (its first MiB would be another document,
or none): ``load`` gives an :class:`UnreadableText` for it, which :class:`ApiSource` reports as
the definition error of its key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Final, Protocol

import yaml
from pydantic import ValidationError

from reconciler import statedir
from reconciler.aio import first_of, in_thread
from reconciler.core.api_tasks import (
    MISSING,
    AlreadyExists,
    VersionMismatch,
    check_expectation,
    check_key,
    version_of,
)
from reconciler.core.desired import Definition, DefinitionError, Location, SourceKind
from reconciler.core.model import CronTask
from reconciler.sources.base import Notify, Ready, SourceState
from reconciler.sources.limits import DEFAULT_MAX_FILE_SIZE, format_size
from reconciler.sources.messages import problems

log = logging.getLogger("crontask.sources")

MAX_TEXT: Final = DEFAULT_MAX_FILE_SIZE  # bytes of a stored task, as of a task file


class TaskTooLarge(ValueError):
    """A task whose stored text would be over :data:`MAX_TEXT` bytes: it is not stored."""

    def __init__(self, key: str, size: int) -> None:
        super().__init__(
            f"task {key} is {size} bytes as stored YAML, over the limit of "
            f"{format_size(MAX_TEXT)}: not stored"
        )
        self.key = key
        self.size = size


def check_size(key: str, text: str) -> None:
    """TaskTooLarge if ``text`` is over :data:`MAX_TEXT` bytes of UTF-8."""
    size = len(text.encode())
    if size > MAX_TEXT:
        raise TaskTooLarge(key, size)


@dataclasses.dataclass(frozen=True, slots=True)
class UnreadableText:
    """A stored task that a store does not read (a file over :data:`MAX_TEXT` bytes, or not
    UTF-8): why,
    worded for a definition error, and a version that changes when the stored bytes do."""

    reason: str
    version: str


def text_version(text: str | UnreadableText) -> str:
    """The version of what ``load`` gave for a key."""
    return text.version if isinstance(text, UnreadableText) else version_of(text)


class ApiTaskStore(Protocol):
    def version(self, key: str) -> str | None: ...

    def versions(self) -> dict[str, str]:
        """Every key and its version (cheap: how a replica notices another's writes)."""
        ...

    def load(self, keys: Collection[str] | None = None) -> Mapping[str, str | UnreadableText]:
        """The stored text of ``keys`` (all when None); absent keys are left out; a text the
        store does not read whole is an :class:`UnreadableText`."""
        ...

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        """Store ``text``; returns its version. Its size is the caller's to check first
        (:func:`check_size`); a store may refuse an oversized text too, touching nothing."""
        ...

    def remove(self, key: str, *, expect: str | None = None) -> None:
        """KeyError if there is nothing to remove."""
        ...


class ApiTaskFiles:
    """:class:`ApiTaskStore` as files, written atomically (a temporary file renamed over the
    old one). Not safe between processes: one crontask owns its state directory. A text over
    :data:`MAX_TEXT` bytes is TaskTooLarge and not written; a file over it is not read."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file of ``key``; a key whose file would resolve outside ``ROOT`` (a symlinked
        namespace folder) is a ValueError."""
        namespace, name = check_key(key)
        path = self.root / namespace / f"{name}.yaml"
        root = self.root.resolve()
        if path.resolve().parent != root / namespace:
            raise ValueError(f"the file of {key} would leave {root}")
        return path

    def version(self, key: str) -> str | None:
        text = self._read(self.path(key))
        return None if text is None else text_version(text)

    def versions(self) -> dict[str, str]:
        return {key: text_version(text) for key, text in self.load().items()}

    def load(self, keys: Collection[str] | None = None) -> dict[str, str | UnreadableText]:
        found: dict[str, str | UnreadableText] = {}
        for key in self._keys() if keys is None else keys:
            try:
                text = self._read(self.path(key))
            except ValueError:
                continue
            if text is not None:
                found[key] = text
        return found

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        path = self.path(key)
        check_size(key, text)
        check_expectation(key, self.version(key), expect)
        statedir.make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return version_of(text)

    def remove(self, key: str, *, expect: str | None = None) -> None:
        path = self.path(key)
        current = self.version(key)
        if current is None:
            raise KeyError(key)
        check_expectation(key, current, expect)
        path.unlink()

    def _keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            f"{folder.name}/{file.stem}"
            for folder in self.root.iterdir()
            if folder.is_dir() and not folder.name.startswith(".")
            for file in folder.glob("*.yaml")
            if not file.name.startswith(".")
        )

    @staticmethod
    def _read(path: Path) -> str | UnreadableText | None:
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_TEXT + 1)
                size = max(os.fstat(handle.fileno()).st_size, len(data))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if len(data) > MAX_TEXT:
            # Never cut short: the first MiB of a task would read as another task, or as none.
            why = f"is {size} bytes, over the limit of {format_size(MAX_TEXT)}"
            return _unreadable(path, why, data)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            # Written by something else than crontask: read with replacement characters, a
            # command's argument would quietly become another.
            return _unreadable(path, f"is not UTF-8 (byte 0x{data[err.start]:02x})", data)


def _unreadable(path: Path, why: str, data: bytes) -> UnreadableText:
    reason = f"the stored file {path} {why}: not read (PUT or DELETE the task to replace it)"
    digest = hashlib.sha256(data).hexdigest()  # the version moves when the bytes do
    return UnreadableText(reason, version_of(f"{reason}\n{digest}"))


@dataclasses.dataclass(frozen=True, slots=True)
class _Stored:
    version: str
    definition: Definition | None
    error: DefinitionError | None


class ApiSource:
    """The tasks of an :class:`ApiTaskStore` as a source; hints are task keys.

    With ``poll`` (seconds; replicas sharing a store), ``watch`` notices the writes of other
    replicas by polling the store's versions (a cheap query); the API's own writes are applied
    at once by the API, which asks for a pass itself."""

    kind = SourceKind.API
    authoritative = False  # see Source.authoritative

    def __init__(
        self, store: ApiTaskStore, *, location: str = "the API", poll: float | None = None
    ) -> None:
        self.store = store
        self.location = location
        self.poll = poll
        self._tasks: dict[str, _Stored] = {}

    def refresh(self, hints: Collection[str] | None = None) -> set[str]:
        """Re-read all tasks (None), or the keys given; returns the keys that changed."""
        texts = self.store.load(None if hints is None else [h for h in hints if "/" in h])
        keys = set(self._tasks) | set(texts) if hints is None else set(hints)
        changed: set[str] = set()
        for key in keys:
            text = texts.get(key)
            before = self._tasks.get(key)
            if text is None:
                if self._tasks.pop(key, None) is not None:
                    changed.add(key)
                continue
            version = text_version(text)
            if before is not None and before.version == version:
                continue
            if isinstance(text, UnreadableText):
                error = DefinitionError(location(key), text.reason, key)
                self._tasks[key] = _Stored(version, None, error)
            else:
                self._tasks[key] = _parse(key, text, version)
            changed.add(key)
        return changed

    def definitions(self) -> list[Definition]:
        return [s.definition for s in self._tasks.values() if s.definition is not None]

    def definitions_of(self, keys: Collection[str]) -> list[Definition]:
        found = (self._tasks.get(key) for key in keys)
        return [s.definition for s in found if s is not None and s.definition is not None]

    def errors(self) -> list[DefinitionError]:
        return [s.error for s in self._tasks.values() if s.error is not None]

    def version(self, key: str) -> str | None:
        stored = self._tasks.get(key)
        return stored.version if stored else self.store.version(key)

    def status(self) -> SourceState:
        return SourceState(self.location)

    async def watch(self, notify: Notify, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        if self.poll is None:
            await stop.wait()
            return
        while not stop.is_set():
            await first_of(stop, timeout=self.poll)
            if stop.is_set():
                return
            try:
                changed = await in_thread(self.changed)
            except Exception as err:  # the store is away: the next poll tries again
                log.debug("api task poll failed", extra={"fields": {"error": str(err)}})
                continue
            if changed:
                notify(changed)

    def changed(self) -> set[str]:
        """The keys whose stored version differs from what this source read (another replica
        wrote them); blocking."""
        versions = self.store.versions()
        # A copy first: a pass may be refreshing this source in another thread.
        known = {key: stored.version for key, stored in dict(self._tasks).items()}
        return {k for k in versions.keys() | known.keys() if versions.get(k) != known.get(k)}


def location(key: str) -> Location:
    return Location(SourceKind.API, f"/api/v1/tasks/{key}")


def _parse(key: str, text: str, version: str) -> _Stored:
    """A stored task was valid when written; one that no longer validates (a newer crontask
    with stricter bounds) is an error of its key, not a crash."""
    where = location(key)
    try:
        document = yaml.safe_load(text)
        task = CronTask.model_validate(document)
    except ValidationError as err:
        text_of = "; ".join(str(p) for p in problems(err, 5)[0])
        return _Stored(version, None, DefinitionError(where, text_of, key))
    except yaml.YAMLError as err:
        return _Stored(version, None, DefinitionError(where, f"unreadable: {err}"[:300], key))
    if task.key != key:
        message = f"the stored document names {task.key}"
        return _Stored(version, None, DefinitionError(where, message, key))
    return _Stored(version, Definition.of(task, where), None)


__all__ = [
    "MISSING",
    "AlreadyExists",
    "ApiSource",
    "ApiTaskFiles",
    "ApiTaskStore",
    "TaskTooLarge",
    "UnreadableText",
    "VersionMismatch",
    "check_expectation",
    "check_key",
    "check_size",
    "location",
    "text_version",
    "version_of",
]
