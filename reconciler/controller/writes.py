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
    InvalidDefinition if it would not read it back (nested deeper than a task file may be)."""
    # allow_unicode: an emoji is its 4 bytes of UTF-8, not a 10-character escape.
    text = yaml.safe_dump(task.to_document(), sort_keys=False, allow_unicode=True)
    check_size(task.key, text)
    read = read_stored(task.key, text)
    if isinstance(read, DefinitionError):
        raise InvalidDefinition([FieldError((), f"as stored YAML, {read.message}")])
    return text


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
