"""Skips kept for the store that are not to be written after all: ``Recorder.drop_skips``.

A replica cut off from the store keeps a skip of each slot it does not start (superseded by the
next) until the store answers. If its lease runs out meanwhile, the replica that takes its tasks
counts those slots in its own catch-up; written later, the kept skips would count them twice
(``controller.lapse``). So they are forgotten, and so are their writes still queued for the
store's threads (``add``'s call goes on after its answer was given up on). A write a thread has
taken cannot be called back: it lands if the store takes it.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.controller.lost import Writes
from reconciler.controller.waiting import CREATE, Waiting
from reconciler.core.runs import RunRecord


class KeptSkips:
    """A mixin of :class:`~reconciler.controller.recorder.Recorder`, which holds the state
    declared here."""

    _pending: Waiting
    _writes: Writes
    _written: Callable[..., None]

    def drop_skips(self, drop: Callable[[RunRecord], bool]) -> list[RunRecord]:
        """Forget the skips waiting for the store (created only where their slot has none)
        that ``drop`` picks, and the writes of them not begun; returns them."""
        entries = self._pending.first(len(self._pending))
        gone = [(key, entry) for key, entry in entries if entry[1] == CREATE and drop(entry[0])]
        # Not a write the buffer's flush is taking now: that one is on its way, and its loop
        # waits for it.
        self._writes.cancel([e[0] for key, e in gone if key not in self._pending.writing])
        self._written(gone)  # as if written: out of the buffer, nobody told
        return [entry[0] for _, entry in gone]
