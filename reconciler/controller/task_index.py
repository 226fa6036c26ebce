"""The task list's order and its text search, made once per desired state (``TaskIndex``).

A list (the API's, a status page, a page of a run-state scan) walks the tasks in key order
after a key. Sorting every key at each call, and for a text search making each task's state
and location and lower-casing its key and location, cost 0.9 to 1.2 s of CPU a search over
100 000 tasks, for any viewer, several at once: now the keys are sorted once per state, and
each task's ``search_text`` made once at its first search, then a search is one ``in`` a task.

The tasks scheduled here as another definition than declared (not declared, or another spec:
``Service._newest``) are few: they are passed in apart, and merged into the order, rather than
a copy or a set of every key made at each call.

Held: the index of the state in force only. The next pass drops it (on the loop), so that no
index holds a state a pass replaced (its definitions, 100 000 of them) until the next list.
"""

from __future__ import annotations

import bisect
import heapq
import threading
from collections.abc import Iterator, Mapping

from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.controller.view import SourceRef, TaskQuery, search_text
from reconciler.core.desired import Definition, DesiredState


class TaskIndex:
    """``desired``'s keys sorted, and at the first search their ``search_text``s."""

    def __init__(self, desired: DesiredState) -> None:
        self.tasks = desired.tasks  # not the state: its errors go with the pass that replaced it
        self.keys = sorted(self.tasks)
        self._texts: list[str] | None = None
        self._making = threading.Lock()  # one search makes the texts, any other waits

    def texts(self) -> list[str]:
        """Each of ``keys``' ``search_text``, in their order (the location a view shows)."""
        with self._making:
            if self._texts is None:
                tasks = self.tasks
                self._texts = [search_text(k, SourceRef.of(tasks[k]).location) for k in self.keys]
            return self._texts

    def walk(self, q: TaskQuery, odd: Mapping[str, Definition]) -> Iterator[tuple[str, str]]:
        """The keys after ``q.after`` whose text ``q`` finds (``TaskQuery.found``), in order,
        each with its ``search_text`` ("" when ``q`` has none, not read then): of the tasks in
        ``odd`` (scheduled as another definition than declared), of the definition there."""
        keys, after = self.keys, q.after
        start = bisect.bisect_right(keys, after) if after is not None else 0
        texts = self.texts() if q.text else None
        if texts is None:
            declared = ((keys[i], "") for i in range(start, len(keys)) if keys[i] not in odd)
        else:
            found = q.found(texts, start)
            declared = ((keys[i], texts[i]) for i in found if keys[i] not in odd)
        scheduled = sorted(
            (k, search_text(k, SourceRef.of(d).location) if q.text else "")
            for k, d in odd.items()
            if after is None or k > after
        )
        found = q.found([text for _, text in scheduled])
        return heapq.merge(declared, (scheduled[i] for i in found))


class TaskIndexes:
    """The ``TaskIndex`` of the state in force: made at the first list after a pass (by one
    thread, any other waits), dropped by the next pass."""

    def __init__(self, reconciler: Reconciler) -> None:
        self._reconciler = reconciler
        self._made: TaskIndex | None = None
        self._making = threading.Lock()
        reconciler.subscribe(self._passed)

    def of(self, desired: DesiredState) -> TaskIndex:
        """By the state's tasks, not the state: a pass that changes no task (an API poll)
        makes a new state of the same mapping, and keeps the index."""
        with self._making:
            if (made := self._made) is not None and made.tasks is desired.tasks:
                return made
            made = TaskIndex(desired)
            # Kept, then looked at again: a pass between the look and the keeping (it runs on
            # the loop, this in a request's thread) would leave a replaced state's index held.
            self._made = made
            if desired.tasks is not self._reconciler.desired.tasks:  # a replaced state's
                self._made = None
            return made

    def _passed(self, result: PassResult) -> None:
        if (made := self._made) is not None and made.tasks is not result.desired.tasks:
            self._made = None
