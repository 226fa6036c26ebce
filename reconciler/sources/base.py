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
    location, the last good ones, flagged with the error; ``definitions_of`` the same for a few
    keys, in proportion to their number (a pass after one edit must not walk 10 000 tasks). All
    three are cheap, in-memory reads.
    """

    kind: str

    def refresh(self, hints: Collection[str] | None = None) -> set[str]: ...

    def definitions(self) -> list[Definition]: ...

    def definitions_of(self, keys: Collection[str]) -> list[Definition]: ...

    def errors(self) -> list[DefinitionError]: ...
