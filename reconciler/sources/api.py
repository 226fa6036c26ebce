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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Final, Protocol

import yaml
from pydantic import ValidationError

from reconciler.aio import first_of
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
from reconciler.sources.messages import problems

log = logging.getLogger("crontask.sources")

_MAX_TEXT: Final = 1 << 20


class ApiTaskStore(Protocol):
    def version(self, key: str) -> str | None: ...

    def versions(self) -> dict[str, str]:
        """Every key and its version (cheap: how a replica notices another's writes)."""
        ...

    def load(self, keys: Collection[str] | None = None) -> dict[str, str]:
        """The stored text of ``keys`` (all when None); absent keys are left out."""
        ...

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        """Store ``text``; returns its version."""
        ...

    def remove(self, key: str, *, expect: str | None = None) -> None:
        """KeyError if there is nothing to remove."""
        ...


class ApiTaskFiles:
    """:class:`ApiTaskStore` as files, written atomically (a temporary file renamed over the
    old one). Not safe between processes: one crontask owns its state directory."""

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
        return None if text is None else version_of(text)

    def versions(self) -> dict[str, str]:
        return {key: version_of(text) for key, text in self.load().items()}

    def load(self, keys: Collection[str] | None = None) -> dict[str, str]:
        found: dict[str, str] = {}
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
        check_expectation(key, self.version(key), expect)
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
    def _read(path: Path) -> str | None:
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_TEXT + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return data[:_MAX_TEXT].decode("utf-8", errors="replace")


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
            version = version_of(text)
            if before is not None and before.version == version:
                continue
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
                changed = await asyncio.to_thread(self.changed)
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
        text_of = "; ".join(str(p) for p in problems(err)[:5])
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
    "VersionMismatch",
    "check_expectation",
    "check_key",
    "location",
    "version_of",
]
