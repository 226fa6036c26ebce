"""The Kubernetes source's bound (``--max-tasks``): the CronTasks waiting for a place.

Places go oldest first (``creationTimestamp``, then namespace and name). The objects refused
for room are kept in a heap by that age across refreshes, so that the refresh of a deletion
(a cleanup script deletes held CronTasks one at a time) finds the oldest waiting ones by what
it places, not by reading and sorting every object waiting (100 000 of them cost 1.8 s of CPU
a pass). The heap's entries are dropped lazily: one is current while the key's age in
``_ages`` is the one it was pushed with.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from reconciler.core.desired import DefinitionError, ErrorKind, Location, SourceKind
from reconciler.core.status import ObjectRef

Age = tuple[str, str, str]

# Stale heap entries (keys placed or gone) past this many more than the keys waiting rebuild it.
SLACK = 1024


def age(obj: dict[str, Any]) -> Age:
    """The order objects get places in: oldest first (RFC 3339 in UTC, as the API server writes
    it, sorts as text), then by namespace and name (timestamps are whole seconds)."""
    meta = obj.get("metadata") or {}
    created = str(meta.get("creationTimestamp") or "")
    return created, str(meta.get("namespace") or ""), str(meta.get("name") or "")


def deleting(obj: dict[str, Any]) -> bool:
    """Being deleted (a finalizer, a foreground deletion holds it): as good as gone, as the
    CronJob controller sees one; no new run starts for it, and it holds no place."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def refusal(ref: ObjectRef, max_tasks: int) -> DefinitionError:
    """The error of an object refused for room: of its own kind (its reason: ``TaskLimit``),
    as its source is full and its spec may be fine."""
    bound = "1 task" if max_tasks == 1 else f"{max_tasks:,} tasks"
    message = (
        f"would take this source past its bound of {bound} (--max-tasks): not applied; "
        "it is read once a CronTask the source holds is deleted (the oldest waiting first)"
    )
    where = Location(SourceKind.KUBERNETES, ref.key)
    return DefinitionError(where, message, ref.key, ErrorKind.TASK_LIMIT)


class Waiting:
    """The keys waiting for a place, with their age; the oldest taken first."""

    def __init__(self) -> None:
        self._ages: dict[str, Age] = {}
        self._heap: list[tuple[Age, str]] = []

    def __contains__(self, key: object) -> bool:
        return key in self._ages

    def __len__(self) -> int:
        return len(self._ages)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ages)

    def add(self, key: str, when: Age) -> None:
        """Wait (or wait on, by a new age: an object created again under the same name)."""
        if self._ages.get(key) != when:
            self._ages[key] = when
            heapq.heappush(self._heap, (when, key))
            self._tidy()

    def discard(self, key: str) -> None:
        if self._ages.pop(key, None) is not None:
            self._tidy()

    def _tidy(self) -> None:
        """Rebuild the heap once stale entries outnumber the current ones (amortised O(1))."""
        if len(self._heap) > 2 * len(self._ages) + SLACK:
            self._heap = [(when, k) for k, when in self._ages.items()]
            heapq.heapify(self._heap)

    def pop(self) -> tuple[str, Age] | None:
        """The oldest key waiting, no longer waiting (None: none)."""
        while self._heap:
            when, key = heapq.heappop(self._heap)
            if self._ages.get(key) == when:
                del self._ages[key]
                return key, when
        return None
