"""The source seam: where desired state comes from.

A source is read level-triggered: events (a file changed, a watch event, a webhook) only tell
the controller that a pass is due; the pass asks each source for its current definitions.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from reconciler.core.desired import Definition, DefinitionError


class Source(Protocol):
    """A place CronTasks are declared in.

    ``refresh`` re-reads what may have changed and returns the task keys whose definitions
    (or errors) may differ from the previous snapshot; it never raises for bad definitions, which
    are errors in ``errors()``. ``definitions()`` returns the definitions in force: for a broken
    location, the last good ones, flagged with the error. Both are cheap, in-memory reads.
    """

    kind: str

    def refresh(self, hints: Collection[str] | None = None) -> set[str]: ...

    def definitions(self) -> list[Definition]: ...

    def errors(self) -> list[DefinitionError]: ...


class MemorySource:
    """A source held in memory: the twin used by tests, and the base of API-created tasks."""

    def __init__(self, kind: str = "memory") -> None:
        self.kind = kind
        self._definitions: dict[str, Definition] = {}
        self._errors: list[DefinitionError] = []
        self._dirty: set[str] = set()

    def put(self, definition: Definition) -> None:
        self._definitions[definition.key] = definition
        self._dirty.add(definition.key)

    def delete(self, key: str) -> None:
        self._definitions.pop(key, None)
        self._dirty.add(key)

    def set_errors(self, errors: list[DefinitionError]) -> None:
        self._errors = list(errors)

    def refresh(self, hints: Collection[str] | None = None) -> set[str]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def definitions(self) -> list[Definition]:
        return list(self._definitions.values())

    def errors(self) -> list[DefinitionError]:
        return list(self._errors)
