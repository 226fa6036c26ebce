"""The work queue of the controller: what the next pass must re-read.

Watchers, webhooks and API writes only *mark* work: a source kind and the paths or keys an
event named (``add``), or a whole resync (``add_resync``). Marks made while a pass runs wait for
the next one, and marks of the same kind merge, so a burst of events costs one pass.

A pass that fails hands its work back (``retry``): it is merged with whatever arrived meanwhile
and becomes ready again after a backoff that doubles with each consecutive failure (as
controller-runtime's rate-limited work queue does per item), from ``base`` up to ``cap``. A pass
that succeeds resets the backoff. Nothing marked is ever dropped: at worst it waits for the
backoff, never for the next periodic resync.

Everything runs on one event loop; ``add`` may be called from other threads only through
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Collection, Mapping

from reconciler.aio import first_of

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True, slots=True)
class Work:
    """One pass worth of work: a resync (re-read everything) or the hints of some events."""

    resync: bool
    hints: Mapping[str, frozenset[str]]

    @property
    def pass_hints(self) -> Mapping[str, Collection[str]] | None:
        """What ``Reconciler.run_pass`` takes: None for a resync."""
        return None if self.resync else self.hints


class WorkQueue:
    def __init__(self, *, base: float = 0.5, cap: float = 60.0, clock: Clock = time.monotonic):
        self.base = base
        self.cap = cap
        self._clock = clock
        self._resync = False
        self._hints: dict[str, set[str]] = {}
        self._not_before = 0.0  # after a failure, nothing is ready before this instant
        self._failures = 0
        self._changed = asyncio.Event()

    # -- marking work ---------------------------------------------------------------------------

    def add(self, kind: str, hints: Collection[str] = ()) -> None:
        """Source ``kind`` changed; ``hints`` name what (paths, keys); none: re-read the kind."""
        self._hints.setdefault(kind, set()).update(hints)
        self._changed.set()

    def add_resync(self) -> None:
        self._resync = True
        self._changed.set()

    @property
    def pending(self) -> bool:
        return self._resync or bool(self._hints)

    @property
    def failures(self) -> int:
        """Consecutive failed passes."""
        return self._failures

    # -- taking work ----------------------------------------------------------------------------

    async def get(self, stop: asyncio.Event, timeout: float | None = None) -> Work | None:
        """The work marked so far, once there is some and any backoff has passed; None when
        ``stop`` is set or ``timeout`` seconds passed with nothing ready."""
        deadline = None if timeout is None else self._clock() + timeout
        while not stop.is_set():
            now = self._clock()
            if self.pending and now >= self._not_before:
                return self._take()
            if deadline is not None and now >= deadline:
                return None
            waits = [deadline] if deadline is not None else []
            if self.pending:
                waits.append(self._not_before)  # the backoff of a failed pass
            wait = max(0.0, min(waits) - now) if waits else None
            self._changed.clear()
            await first_of(stop, self._changed, timeout=wait)
        return None

    def _take(self) -> Work:
        work = Work(self._resync, {kind: frozenset(h) for kind, h in self._hints.items()})
        self._resync = False
        self._hints = {}
        return work

    # -- the outcome of a pass ------------------------------------------------------------------

    def done(self, work: Work) -> None:
        """The pass for ``work`` succeeded."""
        self._failures = 0
        self._not_before = 0.0

    def retry(self, work: Work) -> float:
        """The pass for ``work`` failed: it goes back on the queue, merged with what arrived
        meanwhile, ready after the backoff (returned, in seconds)."""
        self._failures += 1
        delay = min(self.cap, self.base * 2.0 ** (self._failures - 1))
        self._not_before = self._clock() + delay
        if work.resync:
            self._resync = True
        for kind, hints in work.hints.items():
            self._hints.setdefault(kind, set()).update(hints)
        self._changed.set()
        return delay
