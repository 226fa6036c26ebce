"""The tasks the API stores, as files: ``<state dir>/api-tasks/NAMESPACE/NAME.yaml``
(:class:`ApiTaskFiles`, an ``ApiTaskStore`` of ``sources.api``, whose module says the
contract), and the size a stored task may have (:func:`check_size`)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Final

from reconciler import statedir
from reconciler.core import api_tasks
from reconciler.core.api_tasks import (
    InTheWay,
    UnreadableText,
    check_expectation,
    check_key,
    text_version,
    version_of,
)
from reconciler.sources import reading
from reconciler.sources.limits import format_size

MAX_TEXT: Final = api_tasks.MAX_TEXT  # bytes of a stored task, as of a task file
_FOLDER_ATTEMPTS: Final = 3  # a namespace folder made again, removed meanwhile (_temporary)


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
        fd, tmp, remade = self._temporary(path.parent)
        if remade and path.parent not in made:
            made.append(path.parent)
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

    def _temporary(self, folder: Path) -> tuple[int, str, bool]:
        """A new temporary file in ``folder``, made if missing: a removal of the last other
        task of the namespace (another key: writes wait for each other per key only) may have
        taken the folder away between the two, and then it is made again."""
        for attempt in range(_FOLDER_ATTEMPTS):
            statedir.make_dirs(folder)
            self._seen = True
            try:
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
            except FileNotFoundError:
                if attempt == _FOLDER_ATTEMPTS - 1:
                    raise
            else:
                return fd, tmp, attempt > 0  # made again: its parent is to be synced too
        raise AssertionError("unreachable")

    def remove(self, key: str, *, expect: str | None = None) -> None:
        current = self.version(key)
        if current is None:
            raise KeyError(key)
        check_expectation(key, current, expect)
        path = self._replaceable(key)
        path.unlink()  # a link itself, never what it leads to
        # The removal of another key's file may have taken the emptied folder away since:
        # nothing is left in it to make durable.
        with contextlib.suppress(FileNotFoundError):
            sync_folder(path.parent)
        # Its namespace's folder goes with its last task: a client that puts each task in a
        # namespace of its own would otherwise leave a folder per namespace ever used, each
        # listed at every load. Not empty: another task is there (or was just written).
        with contextlib.suppress(OSError):
            path.parent.rmdir()
            sync_folder(self.root)

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
        # Whether it was seen is read before it is looked at: a write of another key (one
        # crontask writes several keys at once) may make the folder, and set ``_seen``, between
        # the look and the read. Read after, the first writes to a fresh state directory
        # took the folder that was not there yet for one removed (a 503, "is gone").
        seen = self._seen
        if self.root.is_dir():
            self._seen = True
            return True
        if seen:
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
                try:
                    files = os.scandir(folder.path)
                except FileNotFoundError:
                    continue  # its last task removed while the root was listed: no key
                with files:
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
