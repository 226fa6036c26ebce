"""The rules of API-owned tasks that every store of them shares. Pure.

A key is ``NAMESPACE/NAME`` of two DNS-1123 labels; a version is a digest of the stored text
(it changes with every change, and holds across restarts and replicas); a write or a removal
may state what it expects to find (``MISSING`` to create only, a version to change only that
version), and fails with :class:`AlreadyExists` or :class:`VersionMismatch` otherwise.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from reconciler.core.runs import DNS1123_LABEL, split_key

MISSING: Final = "<missing>"
_LABEL: Final = re.compile(DNS1123_LABEL)
_VERSION_CHARS: Final = 20  # 80 bits of SHA-256: a resource version, not a signature


class AlreadyExists(Exception):
    """A create of a key the API already has."""

    def __init__(self, key: str) -> None:
        super().__init__(f"task {key} already exists; PUT /api/v1/tasks/{key} replaces it")
        self.key = key


class VersionMismatch(Exception):
    """A conditional write found another version, or no task: someone else changed it since it
    was read. ``current`` is the version now (None: it does not exist)."""

    def __init__(self, key: str, current: str | None) -> None:
        now = f"it is at version {current}" if current else "it does not exist"
        super().__init__(f"task {key} changed since it was read: {now}; read it again")
        self.key = key
        self.current = current


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_VERSION_CHARS]


def check_key(key: str) -> tuple[str, str]:
    """``(namespace, name)``; ValueError for anything but two DNS-1123 labels."""
    namespace, name = split_key(key)
    for label in (namespace, name):
        if len(label) > 63 or _LABEL.fullmatch(label) is None:
            raise ValueError(f"not a task key: {key[:200]!r}")
    return namespace, name


def check_expectation(key: str, current: str | None, expect: str | None) -> None:
    if expect == MISSING and current is not None:
        raise AlreadyExists(key)
    if expect is not None and expect != MISSING and current != expect:
        raise VersionMismatch(key, current)
