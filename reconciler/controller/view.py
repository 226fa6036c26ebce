"""What the running reconciler shows to its interfaces (REST API, CLI clients, status sinks).

``RuntimeView`` is the contract between the controller and the API layer: the API reads and
acts only through it, so it can be tested against any implementation, and the controller never
imports the web framework.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from reconciler.core.runs import RunRecord
from reconciler.store.base import RunStore


@dataclasses.dataclass(frozen=True, slots=True)
class SourceRef:
    kind: str  # "file" | "git" | "kubernetes" | "api"
    location: str  # "path:line:col", "namespace/name" of a CR, ...
    revision: str | None = None  # a commit SHA for git


@dataclasses.dataclass(frozen=True, slots=True)
class TaskView:
    key: str  # "namespace/name"
    resource: Mapping[str, Any]  # the CronTask document in force (its last good definition)
    source: SourceRef
    error: str | None  # the current definition error or conflict; the task runs its last good one
    suspended: bool
    running: tuple[str, ...]  # ids of running runs
    next_runs: tuple[datetime, ...]  # the next fire times (up to 5), in the task's zone
    last_run: RunRecord | None

    @property
    def state(self) -> str:
        """``Suspended``, ``Error`` (a definition problem; the last good one runs) or ``Ready``."""
        if self.suspended:
            return "Suspended"
        return "Error" if self.error else "Ready"


@dataclasses.dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source of definitions and how its last sync went."""

    kind: str  # "file" | "git" | "kubernetes" | "api"
    location: str  # the paths, the repository URL (credentials stripped), ...
    tasks: int  # definitions in force from it
    errors: int  # definition errors and conflicts located in it
    revision: str | None = None  # git: the commit in force
    attempted_revision: str | None = None  # git: the newest commit tried
    last_sync: datetime | None = None  # the last successful fetch
    last_attempt: datetime | None = None
    last_error: str | None = None  # why the last sync failed (secrets redacted)


@dataclasses.dataclass(frozen=True, slots=True)
class FieldError:
    location: tuple[str | int, ...]  # e.g. ("spec", "schedule")
    message: str


class InvalidDefinition(ValueError):
    """A resource sent to the API does not validate; ``errors`` name each failing field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(
            "; ".join(f"{'.'.join(map(str, e.location))}: {e.message}" for e in errors)
        )
        self.errors = errors


class OwnedElsewhere(Exception):
    """The task is defined by another source (a file, git, a custom resource): change it there.

    ``source`` says where, so the API can tell the user.
    """

    def __init__(self, key: str, source: SourceRef) -> None:
        super().__init__(
            f"{key} is defined by {source.kind} source {source.location}"
            + (f" at revision {source.revision}" if source.revision else "")
            + "; change it there"
        )
        self.key = key
        self.source = source


class RuntimeView(Protocol):
    """The running reconciler, as its interfaces see it.

    Reads are snapshots and cheap. ``trigger`` starts a manual run now (or records why it was
    skipped, e.g. ``ConcurrencyForbid``) and returns that record; KeyError for an unknown task.
    ``put_api_task`` creates or replaces a task owned by the API (persisted, reconciled like
    any other source) and returns ``(view, created)``; it raises InvalidDefinition or
    OwnedElsewhere. ``delete_api_task`` raises KeyError or OwnedElsewhere. ``readiness``
    names each check (``sources``, ``scheduler``, ``store``) and whether it passes.
    ``sources`` lists every source with its revision and sync state. ``sync_now(kind)`` asks a
    pulling source (git) to fetch at once; False if there is no such source.
    """

    @property
    def store(self) -> RunStore: ...

    def tasks(self) -> list[TaskView]: ...

    def task(self, key: str) -> TaskView | None: ...

    def trigger(self, key: str) -> RunRecord: ...

    def put_api_task(self, document: Mapping[str, Any]) -> tuple[TaskView, bool]: ...

    def delete_api_task(self, key: str) -> None: ...

    def readiness(self) -> dict[str, bool]: ...

    def sources(self) -> list[SourceStatus]: ...

    def sync_now(self, kind: str) -> bool: ...
