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
only, a version to change only that version, None for either); either may refuse with
``InTheWay`` (something the store did not make holds the task's place), changing nothing.

A stored task is at most :data:`MAX_TEXT` bytes of UTF-8, as a task file of a folder is: a
writer checks with :func:`check_size` before it stores anything (:class:`TaskTooLarge`), and a
stored text over the limit is never read cut short (its first MiB would be another document,
or none): ``load`` gives an :class:`UnreadableText` for it, which :class:`ApiSource` reports as
the definition error of its key. A stored text is read as a task file is (``documents``: its
nesting, values and numbers bounded), so a text nobody could read is an error of its key, never
of the pass; so is an entry of the files that is not a file crontask wrote (see
:class:`ApiTaskFiles`).

The source is authoritative (``Source.authoritative``): every task deleted is a state the user
made, so the reconciler's guard against an empty read does not keep the last one running. A
store that cannot be read is never an empty read: ``load`` raises (the database is away; the
folder of :class:`ApiTaskFiles` is gone once it was there), and ``refresh`` keeps every task
in force, its error in ``status``, until it can read the store again; the pass goes on with
the other sources' changes. A stored text that no longer reads keeps its key's last good
definition in force, flagged, as a broken file does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Collection, Mapping
from typing import Final, Protocol

from reconciler.aio import ended, first_of, in_thread, retrieved
from reconciler.core import jobspec
from reconciler.core.api_tasks import (
    MISSING,
    AlreadyExists,
    InTheWay,
    UnreadableText,
    VersionMismatch,
    check_expectation,
    check_key,
    text_version,
    version_of,
)
from reconciler.core.desired import Definition, DefinitionError, Location, SourceKind
from reconciler.sources.apifiles import MAX_TEXT, ApiTaskFiles, TaskTooLarge, check_size
from reconciler.sources.base import Notify, Ready, SourceState
from reconciler.sources.documents import parse_text
from reconciler.sources.limits import YamlLimits, excerpt, format_size

log = logging.getLogger("crontask.sources")

SHOWN_PROBLEMS: Final = 5  # of a stored text that does not read: its definition error names
# A task file's bounds, with room for every value of a task the API accepts (its JobSpec alone
# may count jobspec.MAX_VALUES), so that what the API stored always reads back.
STORED_LIMITS: Final = YamlLimits(max_values=jobspec.MAX_VALUES + 10_000)


class ApiTasksUnavailable(Exception):
    """The store of the API's tasks could not be read or written: its folder gone (a volume not
    mounted, moved away), a full or failing disk. Nothing the request did, and nothing of the
    run store: the same request works once the store is back (the API's 503)."""


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


@dataclasses.dataclass(frozen=True, slots=True)
class StoredTask:
    """What :class:`ApiSource` read for a key: its version, and its definition or why there is
    none; ``size``, the bytes of its text (0 for a text the store did not read)."""

    version: str
    definition: Definition | None
    error: DefinitionError | None
    size: int = 0


class ApiSource:
    """The tasks of an :class:`ApiTaskStore` as a source; hints are task keys.

    With ``poll`` (seconds; replicas sharing a store), ``watch`` notices the writes of other
    replicas by polling the store's versions (a cheap query); the API's own writes are applied
    at once by the API, which asks for a pass itself."""

    kind = SourceKind.API
    # A DELETE is deliberate, the last one too; an unreadable store keeps all (see the module).
    authoritative = True  # see Source.authoritative

    def __init__(
        self, store: ApiTaskStore, *, location: str = "the API", poll: float | None = None
    ) -> None:
        self.store = store
        self.location = location
        self.poll = poll
        self._tasks: dict[str, StoredTask] = {}
        self._error: str | None = None  # why the last refresh could not read the store

    def refresh(self, hints: Collection[str] | None = None) -> set[str]:
        """Re-read all tasks (None), or the keys given; returns the keys that changed. A store
        that cannot be read (its folder gone, a database away) changes nothing: the tasks read
        before stay in force, the error shows in ``status``, and the other sources' changes
        are applied all the same (a pass that failed for it would hold them back). The next
        full refresh reads everything again."""
        try:
            texts = self.store.load(None if hints is None else [h for h in hints if "/" in h])
        except Exception as err:
            error = _unread(err)
            # Said when it changes, not at each pass that finds it still so: while the folder
            # is gone, every write of the API and every pass reads it again (1 714 writes in
            # 5 s were 1 714 lines). ``status`` says it meanwhile.
            if error != self._error:
                log.warning(
                    "api tasks cannot be read; keeping those in force",
                    extra={"fields": {"error": error}},
                )
            self._error = error
            return set()
        if self._error is not None:
            log.info("api tasks read again", extra={"fields": {"was": self._error}})
        self._error = None
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
            stored = _stored(key, text, version)
            if stored.definition is None and before is not None and before.definition:
                # As a broken file: its last good definition stays in force, flagged.
                kept = dataclasses.replace(before.definition, error=str(stored.error))
                stored = dataclasses.replace(stored, definition=kept)
            self._tasks[key] = stored
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

    def stored(self, key: str) -> StoredTask | None:
        """What the last refresh read for ``key``: a version and the definition of that very
        version, read together (so an answer's ETag is always that of its resource)."""
        return self._tasks.get(key)

    def usage(self) -> tuple[int, int]:
        """How many tasks were read, and their bytes together (for ``check_room``)."""
        tasks = list(self._tasks.values())  # a copy first: a pass may be refreshing
        return len(tasks), sum(t.size for t in tasks)

    def status(self) -> SourceState:
        return SourceState(self.location, last_error=self._error)

    def knows(self, err: BaseException) -> bool:
        """Whether the last refresh could not read the store for ``err`` (the same error): a
        pass to read it again would only say what ``status`` says."""
        return self._error is not None and self._error == _unread(err)

    async def watch(self, notify: Notify, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        if self.poll is None:
            await stop.wait()
            return
        while not stop.is_set():
            await first_of(stop, timeout=self.poll)
            if stop.is_set():
                return
            polling = asyncio.ensure_future(in_thread(self.changed))
            polling.add_done_callback(retrieved)
            # A store that takes bytes and never answers must not hold the stop: the poll is
            # left to its thread once the stop comes.
            await first_of(ended(polling), stop)
            if not polling.done():
                return
            try:
                changed = polling.result()
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


def _unread(err: BaseException) -> str:
    """The error of a store that could not be read, as ``status`` says it."""
    return excerpt(f"cannot read the stored tasks: {err}", 500)


def location(key: str) -> Location:
    return Location(SourceKind.API, f"/api/v1/tasks/{key}")


def read_stored(key: str, text: str) -> Definition | DefinitionError:
    """The task ``text`` stores for ``key``, or why it is none. Read as a task file is, with the
    same bounds (``documents.parse_text``: nesting, values, numbers, duplicate keys), so a
    stored text nobody could read is an error of its key, not of every pass. The API checks
    a text with this before storing it: what it stores reads back."""
    where = location(key)
    size = len(text.encode())
    if size > MAX_TEXT:  # whatever the store: never parse a text the files would not read
        why = f"the stored task is {size} bytes, over the limit of {format_size(MAX_TEXT)}"
        return DefinitionError(
            where, f"{why}: not read (PUT or DELETE the task to replace it)", key
        )
    parsed = parse_text(text, where.path, source=SourceKind.API, limits=STORED_LIMITS)
    if parsed.errors:
        first = parsed.errors[0]
        shown = "; ".join(e.message for e in parsed.errors[:SHOWN_PROBLEMS])
        more = len(parsed.errors) - SHOWN_PROBLEMS
        if more > 0:
            shown += f" (and {more} more)"
        return DefinitionError(first.location, shown, key)
    if len(parsed.definitions) != 1:
        found = len(parsed.definitions)
        return DefinitionError(where, f"the stored text holds {found} CronTasks, not one", key)
    task = parsed.definitions[0].task
    if task.key != key:
        return DefinitionError(where, f"the stored document names {task.key}", key)
    return Definition.of(task, where)


def _stored(key: str, text: str | UnreadableText, version: str) -> StoredTask:
    """A stored task was valid when written; one that no longer reads (a newer crontask with
    stricter bounds, a file written by something else) is an error of its key, not a crash."""
    if isinstance(text, UnreadableText):
        return StoredTask(version, None, DefinitionError(location(key), text.reason, key))
    read = read_stored(key, text)
    size = len(text.encode())
    if isinstance(read, DefinitionError):
        return StoredTask(version, None, read, size)
    return StoredTask(version, read, None, size)


__all__ = [
    "MAX_TEXT",
    "MISSING",
    "AlreadyExists",
    "ApiSource",
    "ApiTaskFiles",
    "ApiTaskStore",
    "ApiTasksUnavailable",
    "InTheWay",
    "StoredTask",
    "TaskTooLarge",
    "UnreadableText",
    "VersionMismatch",
    "check_expectation",
    "check_key",
    "check_size",
    "location",
    "read_stored",
    "text_version",
    "version_of",
]
