"""The rules of API-owned tasks that every store of them shares. Pure.

A key is ``NAMESPACE/NAME`` of two DNS-1123 labels; a version is a digest of the stored text
(it changes with every change, and holds across restarts and replicas); a write or a removal
may state what it expects to find (``MISSING`` to create only, a version to change only that
version), and fails with :class:`AlreadyExists` or :class:`VersionMismatch` otherwise.

A stored text is at most :data:`MAX_TEXT` bytes of UTF-8 (as a task file of a folder); one over
it is never read cut short but given as an :class:`UnreadableText`. The API holds at most
:data:`MAX_TASKS` tasks of at most :data:`MAX_TOTAL_BYTES` together (:func:`check_room`): every
pass reads them all, and a list of them all must fit in an answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Final

from reconciler.core.runs import DNS1123_LABEL, split_key

MISSING: Final = "<missing>"
_LABEL: Final = re.compile(DNS1123_LABEL)
_VERSION_CHARS: Final = 20  # 80 bits of SHA-256: a resource version, not a signature
_MIB: Final = 1024 * 1024

MAX_TEXT: Final = _MIB  # bytes of one stored task: sources.limits.DEFAULT_MAX_FILE_SIZE
MAX_TASKS: Final = 10_000  # API-owned tasks
MAX_TOTAL_BYTES: Final = 64 * _MIB  # of all API-owned tasks as stored YAML


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


class InTheWay(Exception):
    """A write or a removal that what the store holds in the task's place prevents (in the
    state directory: a namespace folder that is a symbolic link, a folder where the task's
    file goes; crontask makes neither): nothing is changed. ``why`` says what is in the way,
    ``advice`` what to do; a read of the key gives the same two (``reason``)."""

    def __init__(self, key: str, why: str, advice: str) -> None:
        super().__init__(f"task {key} cannot be changed here: {why}; {advice}")
        self.key = key
        self.reason = f"{why}: not read ({advice})"


class NoRoom(Exception):
    """A write that would take the API's tasks over :data:`MAX_TASKS` or
    :data:`MAX_TOTAL_BYTES`: nothing is stored."""


class NotInForce(Exception):
    """A write (or a removal) that is stored but not in force: the pass that applies it failed,
    or kept the task. The store keeps it, and the next pass that works applies it."""

    def __init__(self, key: str, why: str, *, removed: bool = False) -> None:
        done = "is deleted from the store" if removed else "is stored"
        super().__init__(
            f"task {key} {done}, but {why}; the next pass that works applies it "
            f"(GET /api/v1/tasks/{key} shows what is in force)"
        )
        self.key = key


@dataclasses.dataclass(frozen=True, slots=True)
class UnreadableText:
    """A stored task that a store does not read (over :data:`MAX_TEXT` bytes, or not UTF-8):
    why, worded for a definition error, and a version that changes when the stored bytes do."""

    reason: str
    version: str


def text_version(text: str | UnreadableText) -> str:
    """The version of what a store's ``load`` gave for a key."""
    return text.version if isinstance(text, UnreadableText) else version_of(text)


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


def check_room(key: str, *, tasks: int, total: int, old: int | None, new: int) -> None:
    """NoRoom if storing ``new`` bytes as ``key`` would take the API over its bounds. ``tasks``
    and ``total`` count what is stored now (``key`` included); ``old`` is the size of ``key``'s
    text (None: a new key). A write that adds nothing (a replace no larger than before) is
    always let through, so that lowered bounds never lock a task in."""
    if old is None and tasks >= MAX_TASKS:
        raise NoRoom(
            f"the API holds {tasks} tasks, its limit is {MAX_TASKS}: task {key} is not "
            "created (delete one first, or declare tasks in files)"
        )
    after = total - (old or 0) + new
    if new > (old or 0) and after > MAX_TOTAL_BYTES:
        raise NoRoom(
            f"the API's tasks would take {after} bytes as stored YAML, over the limit of "
            f"{MAX_TOTAL_BYTES // _MIB} MiB: task {key} is not stored (delete or shrink "
            "some first, or declare tasks in files)"
        )
