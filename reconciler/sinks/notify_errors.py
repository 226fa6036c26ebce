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

**The first pass.** Every process starts knowing of no error, so its first pass finds each one
new. Alone (no ``replicas``), it tells them all: those present at start-up are reported once.
With replicas, the cluster tells them once, not each replica that joins: a replica whose first
pass finds a member that joined before it and is alive (:func:`others_told`: it has renewed
since this one joined; draining members too: they told them) takes that pass's errors as told,
and tells only what changes after; the first member (alone, or the oldest of replicas started
together, by when each joined, then by id) tells every error of its first pass, whoever owns
it, since the others take them as told. The record of a replica that died and whose lease has
not run out (a crash and a quick restart) is no such member: it told nothing of what broke
while it was down, so the first pass waits for it to renew or expire (at most a lease and a
half), and then tells every error if it did not renew.
Replicas that do not see each other yet (a record written as another read the list) may both
tell them: a rare duplicate rather than a loss. An error that appears between a replica's join
and its first pass may be lost if it is that replica's: the others, which see it come, leave it
to its owner, which takes it as told. So may one that only this replica's view shows (it read
a file differently from the others) and that stays so: the others never see it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, Protocol

from reconciler.aio import in_thread
from reconciler.core.desired import DesiredState
from reconciler.core.problem_lines import Problem, ProblemLines, Told, subject
from reconciler.membership.base import Announcement, Member
from reconciler.sinks.notify_delivery import Message
from reconciler.sinks.notify_routes import NewError, Routes, error_messages, place, route_errors

log = logging.getLogger("crontask.notify")

PASSES_MAX: Final = 16  # passes waiting to be looked at (each holds a ``DesiredState``)
YIELD_EVERY: Final = 200  # errors, or runs (``notify``), between two turns of the event loop


class Replicas(Protocol):
    """What the notifier reads of the membership (``controller.cluster.Cluster`` has both): this
    replica, and the live members as of the last renewal."""

    @property
    def me(self) -> Announcement: ...

    @property
    def members(self) -> Sequence[Member]: ...


def older_members(replicas: Replicas) -> tuple[Member, list[Member]] | None:
    """This replica's record and the live members that joined before it (by ``since``, then by
    id: every replica orders the same records the same way); None if it is no member yet."""
    me = next((m for m in replicas.members if m.id == replicas.me.id), None)
    if me is None:
        return None
    return me, [m for m in replicas.members if (m.since, m.id) < (me.since, me.id)]


async def others_told(replicas: Replicas, *, poll: float = 0.5) -> bool:
    """Whether a member that joined before this replica is alive, so that it told the errors
    present when this one started: one that has renewed since this one joined. A record that
    has not may be a replica that died (its lease not run out yet: a crash and a quick
    restart, every replica killed at once), which told nothing of what broke while it was
    down: so this waits for it to renew, or for its record to expire, at most a lease and a
    half (a live member renews every ``--renew-interval``). Not a member yet: as if alone."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + replicas.me.lease_seconds * 1.5
    while (found := older_members(replicas)) is not None:
        me, older = found
        if not older:
            return False
        if any(m.renewed >= me.since for m in older):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(poll)
    return False


class ErrorNews:
    """See the module docstring."""

    def __init__(
        self,
        routes: Routes,
        *,
        mine: Callable[[str], bool],
        clock: Callable[[], datetime],
        replicas: Replicas | None = None,
    ) -> None:
        self.routes = routes
        self.mine = mine
        self.clock = clock
        self.replicas = replicas
        self._first = True  # no pass looked at yet
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
            mine = await self._whose(news)
            told: dict[str, list[NewError]] = {}
            for start in range(0, len(news), YIELD_EVERY):
                route_errors(self.routes, self._mine(news[start : start + YIELD_EVERY], mine), told)
                await asyncio.sleep(0)  # a turn of the event loop
            for message in error_messages(self.routes, told, self.clock()):
                enqueue(message)

    def _news(self, desired: DesiredState) -> list[tuple[str, Problem]]:
        """The lines ``desired`` shows that are news (not a line that moved)."""
        return self._told.news(*self._problems.update(desired))

    async def _whose(self, news: list[tuple[str, Problem]]) -> Callable[[str], bool]:
        """Which of a pass's errors are this replica's to tell: those it owns, but in its first
        pass with replicas (see the module docstring): none if a live member joined before it,
        else all of them."""
        first, self._first = self._first, False
        if not first or self.replicas is None or not news:
            return self.mine
        if await others_told(self.replicas):
            log.info(
                "notifications: the definition errors found at start-up are taken as told by"
                " the replicas that were running",
                extra={"fields": {"errors": len(news)}},
            )
            return lambda key: False
        return lambda key: True

    def _mine(self, news: list[tuple[str, Problem]], mine: Callable[[str], bool]) -> list[NewError]:
        """The errors of ``news`` this replica reports (``mine`` asked once for each)."""
        found = []
        for text, problem in news:
            key, kinds = subject(problem)
            if mine(key or ""):
                found.append((text, key, kinds, place(problem)))
        return found
