"""The new definition errors of each pass, found and routed off the event loop.

``Notifier.after_pass`` runs on the event loop, after each pass: it only hands the pass over
(:meth:`ErrorNews.handed`, O(1)). The notifier's component then looks at the passes in order
(:meth:`ErrorNews.tell`): which of their errors are news (``problem_lines``: 0.4 s for 100 000
new errors, so in a thread), which of those this replica reports (``mine``), and the receivers
whose routes take them (``notify_routes``), :data:`YIELD_EVERY` errors at a time, letting the
loop run between them; then one message per receiver and pass. What counts as news is in
``notify``'s docstring.

At most :data:`PASSES_MAX` passes wait: past that, the oldest waiting one is skipped. The next
is then compared with the one before the skipped (``ProblemLines`` goes by the errors of the
state it saw last), so what they brought that is still there is told; an error that came and
went within them is not, nor one that went and came back (it is the same problem as before).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Final

from reconciler.aio import in_thread
from reconciler.core.desired import DesiredState
from reconciler.core.problem_lines import Problem, ProblemLines, Told, subject
from reconciler.sinks.notify_delivery import Message
from reconciler.sinks.notify_routes import NewError, Routes, error_messages, place, route_errors

log = logging.getLogger("crontask.notify")

PASSES_MAX: Final = 16  # passes waiting to be looked at (each holds a ``DesiredState``)
YIELD_EVERY: Final = 200  # errors, or runs (``notify``), between two turns of the event loop


class ErrorNews:
    """See the module docstring."""

    def __init__(
        self, routes: Routes, *, mine: Callable[[str], bool], clock: Callable[[], datetime]
    ) -> None:
        self.routes = routes
        self.mine = mine
        self.clock = clock
        self._passes: collections.deque[DesiredState] = collections.deque()  # not looked at
        self._skipped = 0
        # Used by ``_news`` alone, in a thread, one pass at a time.
        self._problems = ProblemLines()  # those shown
        self._told = Told()

    @property
    def waiting(self) -> int:
        """How many passes wait to be looked at."""
        return len(self._passes)

    def handed(self, desired: DesiredState) -> None:
        """A successful pass's desired state, to be looked at (O(1), on the event loop)."""
        if len(self._passes) >= PASSES_MAX:
            self._passes.popleft()
            self._skipped += 1
        self._passes.append(desired)

    async def tell(self, enqueue: Callable[[Message], None]) -> None:
        """The new errors of each pass waiting, to ``enqueue``: one message per receiver whose
        routes take some of them, and pass."""
        if self._skipped:
            log.warning(
                "notifications: passes came faster than they were looked at; definition errors"
                " that came and went between them were not told",
                extra={"fields": {"skipped": self._skipped}},
            )
            self._skipped = 0
        while self._passes:
            news = await in_thread(self._news, self._passes.popleft())
            told: dict[str, list[NewError]] = {}
            for start in range(0, len(news), YIELD_EVERY):
                route_errors(self.routes, self._mine(news[start : start + YIELD_EVERY]), told)
                await asyncio.sleep(0)  # a turn of the event loop
            for message in error_messages(self.routes, told, self.clock()):
                enqueue(message)

    def _news(self, desired: DesiredState) -> list[tuple[str, Problem]]:
        """The lines ``desired`` shows that are news (not a line that moved)."""
        return self._told.news(*self._problems.update(desired))

    def _mine(self, news: list[tuple[str, Problem]]) -> list[NewError]:
        """The errors of ``news`` this replica reports (``mine`` asked once for each)."""
        found = []
        for text, problem in news:
            key, kinds = subject(problem)
            if self.mine(key or ""):
                found.append((text, key, kinds, place(problem)))
        return found
