"""What a write of an API-owned task must satisfy before the store is touched: its text as the
API source stores and reads it back, the version an ``If-Match`` names, and one writer per key
in this process (``KeyedLocks``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import yaml

from reconciler.controller.view import FieldError, IfMatch, InvalidDefinition, VersionMismatch
from reconciler.core.desired import DefinitionError
from reconciler.core.model import CronTask
from reconciler.sources.api import check_size, read_stored


def stored_text(task: CronTask) -> str:
    """``task`` as the API source stores it; TaskTooLarge if that is over what it reads,
    InvalidDefinition if it would not read it back (nested deeper than a task file may be), or
    would read back another task than ``task`` (never stored: what runs is what was sent)."""
    document = task.to_document()
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    check_size(task.key, text)
    read = read_stored(task.key, text)
    if isinstance(read, DefinitionError):
        raise InvalidDefinition([FieldError((), f"as stored YAML, {read.message}")])
    if read.task.to_document() != document:
        why = "as stored YAML, it would read back as another task (a string it holds changes)"
        raise InvalidDefinition([FieldError((), why)])
    return text


class _Dumper(yaml.SafeDumper):
    """``yaml.safe_dump``'s, but a string holding U+0085 (NEL) is double-quoted. The text is
    written with ``allow_unicode``: an emoji is its 4 bytes of UTF-8, not a 10-character escape.

    PyYAML writes a NEL raw in a plain or single-quoted scalar, where a YAML reader takes it for
    a line break and folds it into a space: "c\\x85d" was stored as "c d". A double-quoted
    scalar escapes it (``\\N``). U+2028 and U+2029 are line breaks that folding keeps; every
    other character is written as YAML reads it back. Texts stored before are read as they
    were (the reader is the same; a NEL they lost was lost when they were written)."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if "\x85" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def check_version(key: str, current: str | None, if_match: IfMatch | None) -> None:
    """VersionMismatch unless ``current`` matches ``if_match`` (None: any version)."""
    if if_match is None:
        return
    if current is None or ("*" not in if_match and current not in if_match):
        raise VersionMismatch(key, current)


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
