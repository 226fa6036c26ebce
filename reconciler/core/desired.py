"""Desired state: what the sources declare, after conflicts are settled.

A source hands over its definitions (the last good one per task, flagged when the current text
is broken) and its errors; ``assemble`` turns them into one mapping from task key to definition.
A key declared in two places is a conflict: the definition whose location sorts first wins, the
same way on every pass and every restart, and the conflict is reported on both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from reconciler.core.model import CronTask


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Location:
    """Where a definition lives. ``line``/``column`` are 1-based, as editors show them."""

    source: str  # "file" | "git" | "kubernetes" | "api"
    path: str  # a file path, "namespace/name" of a custom resource, ...
    line: int = 0  # 0: unknown
    column: int = 0
    revision: str | None = dataclasses.field(default=None, compare=False)

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.column or 1}"
        return self.path


@dataclasses.dataclass(frozen=True, slots=True)
class Definition:
    """A valid CronTask and where it came from.

    ``error`` is set when this is a last-good definition kept in force because the text at its
    location no longer parses or validates.
    """

    task: CronTask
    location: Location
    hash: str
    error: str | None = None

    @classmethod
    def of(cls, task: CronTask, location: Location) -> Definition:
        return cls(task=task, location=location, hash=task.spec_hash())

    @property
    def key(self) -> str:
        return self.task.key


@dataclasses.dataclass(frozen=True, slots=True)
class DefinitionError:
    """A definition that could not be used, with the place to fix it."""

    location: Location
    message: str
    key: str | None = None  # when the broken text still names its task

    def __str__(self) -> str:
        # The revision goes last, so that the line still starts with file:line:col.
        revision = self.location.revision
        suffix = f" (revision {revision[:12]})" if revision else ""
        return f"{self.location}: {self.message}{suffix}"


@dataclasses.dataclass(frozen=True, slots=True)
class Conflict:
    key: str
    winner: Location
    losers: tuple[Location, ...]

    def __str__(self) -> str:
        others = ", ".join(str(loc) for loc in self.losers)
        return f"{self.key} is defined more than once: using {self.winner}, ignoring {others}"


@dataclasses.dataclass(frozen=True, slots=True)
class DesiredState:
    tasks: Mapping[str, Definition]
    errors: tuple[DefinitionError, ...] = ()
    conflicts: tuple[Conflict, ...] = ()

    @property
    def problems(self) -> list[str]:
        """Every error and conflict as one line, in a stable order."""
        return [str(e) for e in self.errors] + [str(c) for c in self.conflicts]


def assemble(
    definitions: Iterable[Definition], errors: Iterable[DefinitionError] = ()
) -> DesiredState:
    by_key: dict[str, list[Definition]] = {}
    for definition in definitions:
        by_key.setdefault(definition.key, []).append(definition)
    tasks: dict[str, Definition] = {}
    conflicts: list[Conflict] = []
    for key, candidates in by_key.items():
        if len(candidates) > 1:
            candidates.sort(key=lambda d: d.location)
            conflicts.append(
                Conflict(key, candidates[0].location, tuple(d.location for d in candidates[1:]))
            )
        tasks[key] = candidates[0]
    conflicts.sort(key=lambda c: c.key)
    ordered_errors = tuple(sorted(errors, key=lambda e: (e.location, e.message)))
    return DesiredState(tasks=tasks, errors=ordered_errors, conflicts=tuple(conflicts))
