"""The source seam: where desired state comes from.

A source is read level-triggered: events (a file changed, a watch event, a webhook) only tell
the controller that a pass is due; the pass asks each source for its current definitions.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Protocol

from reconciler.aio import Ready as Ready  # re-exported: part of this contract
from reconciler.core.desired import Definition, DefinitionError

# What changed, as hints for the next pass of this source (paths, keys); empty: re-read it.
Notify = Callable[[Collection[str]], None]


@dataclasses.dataclass(frozen=True)
class SourceState:
    """How a source is doing, for ``/api/v1/sources``, the status page and the metrics."""

    location: str  # the paths, the repository URL#ref (no credentials), the namespace, ...
    revision: str | None = None  # git: the commit in force
    attempted_revision: str | None = None  # git: the newest commit tried
    last_sync: datetime | None = None  # the last successful sync of a pulling source
    last_attempt: datetime | None = None
    last_error: str | None = None  # why the last sync or list failed (secrets redacted)
    sync_failures: int = 0  # failed syncs since the start (a counter)


class Source(Protocol):
    """A place CronTasks are declared in.

    ``refresh`` re-reads what may have changed and returns the task keys whose definitions
    (or errors) may differ from the previous snapshot; it never raises for bad definitions, which
    are errors in ``errors()``. ``definitions()`` returns the definitions in force: for a broken
    location, the last good ones, flagged with the error; ``definitions_of`` the same for a few
    keys, in proportion to their number (a pass after one edit must not walk 10 000 tasks). All
    three are cheap, in-memory reads.

    ``watch`` is the source's life: it runs on the event loop until ``stop`` is set, calls
    ``ready()`` once a change made from then on will be noticed (the folder watch armed, the
    first list done, the revision in force known), and calls ``notify(hints)`` whenever
    something changed; it never reads or applies anything itself (a pass does, level-triggered).
    Raising, or returning before ``stop``, is a failure of the process. ``status()`` says how
    the source is doing; cheap, from any thread.
    """

    @property
    def kind(self) -> str:
        """A ``SourceKind``: what the definitions' ``Location.source`` says."""
        ...

    @property
    def authoritative(self) -> bool:
        """Whether reading nothing is the state its user made, never a read gone wrong (every
        CronTask deleted from a cluster that was listed): the reconciler's guard against an
        empty read does not hold the removals of its tasks. A folder or a checkout that yields
        nothing may be a wrong path or a bad commit, and is not."""
        ...

    def refresh(self, hints: Collection[str] | None = None) -> set[str]: ...

    def definitions(self) -> list[Definition]: ...

    def definitions_of(self, keys: Collection[str]) -> list[Definition]: ...

    def errors(self) -> list[DefinitionError]: ...

    def status(self) -> SourceState: ...

    async def watch(self, notify: Notify, ready: Ready, stop: asyncio.Event) -> None: ...
