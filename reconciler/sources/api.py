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
import errno
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Final, Protocol

from reconciler import statedir
from reconciler.aio import first_of, in_thread
from reconciler.core import api_tasks, jobspec
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
from reconciler.sources import reading
from reconciler.sources.base import Notify, Ready, SourceState
from reconciler.sources.documents import parse_text
from reconciler.sources.limits import YamlLimits, excerpt, format_size

log = logging.getLogger("crontask.sources")

MAX_TEXT: Final = api_tasks.MAX_TEXT  # bytes of a stored task, as of a task file
SHOWN_PROBLEMS: Final = 5  # of a stored text that does not read: its definition error names
# A task file's bounds, with room for every value of a task the API accepts (its JobSpec alone
# may count jobspec.MAX_VALUES), so that what the API stored always reads back.
STORED_LIMITS: Final = YamlLimits(max_values=jobspec.MAX_VALUES + 10_000)


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
    old one, then the folder synced). Not safe between processes: one crontask owns its state
    directory. A text over :data:`MAX_TEXT` bytes is TaskTooLarge and not written; a file over
    it is not read.

    ``ROOT`` missing reads as no task until it has been seen (a state directory no task was
    ever written to); once seen, a missing ``ROOT`` is a FileNotFoundError, never an empty
    read: a volume unmounted or a folder moved away must not delete every API task. So is a
    folder that cannot be listed (``ROOT``, or a namespace folder: its keys are unknown).

    Anything else crontask did not write is the error of its key only, read without blocking
    and without following a link (``reading.read_regular``): a FIFO, a folder or a link named
    ``NAME.yaml``, a file it may not read. A PUT or a DELETE of the key replaces or removes
    such an entry (never what a link leads to), but for a folder, which crontask does not
    remove, and a namespace folder that is a link, whose other keys it holds: those are
    :class:`InTheWay`, an error that says what to remove."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._seen = False  # ROOT has been a folder: from then on, it missing is an error

    def path(self, key: str) -> Path:
        """The file of ``key``, never resolved; a key whose namespace folder is a symbolic
        link (its file would leave ``ROOT``) is :class:`InTheWay`."""
        namespace, name = check_key(key)
        folder = self.root / namespace
        if os.path.islink(folder):
            raise InTheWay(
                key,
                f"the file of {key} would leave {self.root}: its namespace folder {folder} is a "
                "symbolic link (crontask makes none)",
                f"remove the link, which holds every task of namespace {namespace}",
            )
        return folder / f"{name}.yaml"

    def version(self, key: str) -> str | None:
        check_key(key)
        if not self._present():
            return None
        text = self._entry(key)
        return None if text is None else text_version(text)

    def versions(self) -> dict[str, str]:
        return {key: text_version(text) for key, text in self.load().items()}

    def load(self, keys: Collection[str] | None = None) -> dict[str, str | UnreadableText]:
        found: dict[str, str | UnreadableText] = {}
        if not self._present():
            return found
        for key in self._keys() if keys is None else keys:
            text = self._entry(key)
            if text is not None:
                found[key] = text
        return found

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        path = self._replaceable(key)
        check_size(key, text)
        check_expectation(key, self.version(key), expect)
        # A folder made here is synced into its parent too, or a crash could lose it.
        made = [folder for folder in (path.parent, self.root) if not folder.is_dir()]
        statedir.make_dirs(path.parent)
        self._seen = True
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)  # replaces a link or a FIFO itself, never writes through it
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for folder in (path.parent, *(new.parent for new in made)):
            sync_folder(folder)  # the rename is durable once the folder is
        return version_of(text)

    def remove(self, key: str, *, expect: str | None = None) -> None:
        current = self.version(key)
        if current is None:
            raise KeyError(key)
        check_expectation(key, current, expect)
        path = self._replaceable(key)
        path.unlink()  # a link itself, never what it leads to
        sync_folder(path.parent)

    def _replaceable(self, key: str) -> Path:
        """The file of ``key``, for a write or a removal: InTheWay if a folder is in its place
        (crontask removes no folder), or if its namespace folder is a link or not a folder."""
        path = self.path(key)
        folder = _mode(path.parent)
        if folder and not stat.S_ISDIR(folder):
            why = f"its namespace folder {path.parent} is not a folder"
            raise InTheWay(key, why, f"remove {path.parent}")
        if stat.S_ISDIR(_mode(path)):
            why = f"its file {path} is a folder (crontask makes none)"
            raise InTheWay(key, why, "remove the folder: crontask removes none")
        return path

    def _entry(self, key: str) -> str | UnreadableText | None:
        """What :meth:`load` gives for ``key``: its text, why it is not read, or None."""
        try:
            path = self.path(key)
        except InTheWay as err:
            # The last good definition of the key stays in force; its others' too.
            return UnreadableText(err.reason, version_of(err.reason))
        except ValueError as err:  # a file named as no task is: crontask wrote none such
            reason = f"{err} ({self.root / key}.yaml): not read (rename or remove the file)"
            return UnreadableText(reason, version_of(reason))
        return self._read(path)

    def _present(self) -> bool:
        """Whether ``ROOT`` is a folder; FileNotFoundError if it was one and is gone."""
        if self.root.is_dir():
            self._seen = True
            return True
        if self._seen:
            raise FileNotFoundError(
                f"the folder of API-owned tasks {self.root} is gone: its tasks stay in force "
                "until it is back (create it empty to delete them all)"
            )
        return False

    def _keys(self) -> list[str]:
        """Every stored key. A folder that cannot be listed raises (pathlib's glob would yield
        nothing, and the source, authoritative, would remove its tasks)."""
        keys: list[str] = []
        with os.scandir(self.root) as folders:
            for folder in folders:
                if folder.name.startswith(".") or not folder.is_dir():
                    continue
                with os.scandir(folder.path) as files:
                    keys.extend(
                        f"{folder.name}/{file.name[: -len('.yaml')]}"
                        for file in files
                        if file.name.endswith(".yaml") and not file.name.startswith(".")
                    )
        return sorted(keys)

    @staticmethod
    def _read(path: Path) -> str | UnreadableText | None:
        try:
            data, size = reading.read_regular(path, at_most=MAX_TEXT + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except reading.Unreadable as err:
            return _unreadable_entry(path, err.message)
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


def sync_folder(folder: Path) -> None:
    """fsync ``folder``, so that a rename or an unlink in it survives a crash. A file system
    that cannot sync a folder (EINVAL) has nothing more to offer: that is no error."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def _unreadable(path: Path, why: str, data: bytes) -> UnreadableText:
    reason = f"the stored file {path} {why}: not read (PUT or DELETE the task to replace it)"
    digest = hashlib.sha256(data).hexdigest()  # the version moves when the bytes do
    return UnreadableText(reason, version_of(f"{reason}\n{digest}"))


def _unreadable_entry(path: Path, why: str) -> UnreadableText:
    """An entry that is not read at all (a FIFO, a folder, a link, a file it may not read)."""
    advice = "PUT or DELETE the task to replace it"
    if stat.S_ISDIR(_mode(path)):
        advice = "remove the folder: crontask removes none"
    reason = f"the stored file {path}: {why} ({advice})"
    return UnreadableText(reason, version_of(reason))


def _mode(path: Path) -> int:
    """``path``'s lstat mode; 0 if there is nothing (or nothing that can be looked at)."""
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


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
            self._error = excerpt(f"cannot read the stored tasks: {err}", 500)
            log.warning(
                "api tasks cannot be read; keeping those in force",
                extra={"fields": {"error": self._error}},
            )
            return set()
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
    "MISSING",
    "AlreadyExists",
    "ApiSource",
    "ApiTaskFiles",
    "ApiTaskStore",
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
