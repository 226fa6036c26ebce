"""The git webhook's places (``admission.MAX_HOOK_BODIES``), shared out by peer, one of them
kept for the peers proven lately, and its waiters bounded apart from the other requests'.

A delivery is proven only once its whole body is in (its signature covers it), so strangers
trickling bodies under a fake signature hold places until their floor or deadline ends them.
Shared out by peer alone, strangers from many one-off addresses (127.1.x.y; an IPv6 /48 holds
65 536 /64s) each ranked as a newcomer, as GitHub's delivery did, and put it at the back: 60
tricklers kept a signed delivery 14 s, 140 kept it 29-30 s (GitHub gives up at 10 s); and 4
senders at the floor rate, 2 from each of 2 addresses, held all 4 places for their whole 10 s.
So a peer whose delivery passed the signature (or a bearer token) check is remembered
(:class:`Proven`: the last :data:`PROVEN_PEERS`, each for :data:`PROVEN_SECONDS`), and
:attr:`Shares.kept` of the places are for such peers; among the waiters, theirs come first. A
proven peer then waits behind other proven peers' deliveries only, whatever strangers do
(measured against ``crontask run``: 0.0 s under all three attacks above).

A first delivery from an address never proven here competes with strangers. ``admission``
listens for a waiter's first message: a body come whole in it (a push of a few KB, anything up
to uvicorn's 64 KiB buffer) is checked in a moment once in, so it may take a kept place too and
goes first among strangers; one with a second's worth at the floor rate goes before those
trickling bytes. Measured: a never-proven 25-byte push under 60 or 140 one-off tricklers, 4
floor senders, or 128 threads of whole fake bodies from new addresses (with the 4 floor
senders): 0.0-0.25 s; a never-proven 300 KB push under 60 or 140 tricklers: 0.4-0.6 s. What is
left: a never-proven body larger than that buffer under 4 floor-rate senders waits for one of
them to end, 9.7 s (it was so before), and strangers sending a second's worth then trickling
rank with it. Behind a proxy that passes bodies on as they come, every caller is its address:
GitHub's and the strangers' deliveries are one peer, proven.

Waiters are bounded here, not among the 4 096 the other requests share: callers that closed
right after their headers stayed listed until their 30 s were over, and 4 200 of them had every
request refused. A waiter whose caller closed before any of its body came is dropped at once
(``admission``); past that, a peer has at most :data:`PEER_WAITING` waiting, strangers
:data:`MAX_WAITING` in all and proven peers as many. Past a peer's bound a request is refused
at once (:class:`Refused`); past the others', the oldest waiter whose body has not come is.
Measured: 4 200 such callers, then a never-proven delivery: 202 in 1.7 s
(the time to take in their connections), the next 0.0 s.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

PROVEN_PEERS: Final = 1024
PROVEN_SECONDS: Final = 6 * 3600.0  # GitHub delivers from a handful of addresses
PEER_WAITING: Final = 64  # waiters of one peer (an address, an IPv6 /64)
MAX_WAITING: Final = 256  # strangers' waiters in all; proven peers' have as many again


# How much of a waiter's body has come while it waited (``admission`` listens for its first
# message): whole (it is checked in a moment once in), at least the floor's first second of it
# (``admission.HOOK_MIN_RATE``: no byte-a-second trickler), or less.
WHOLE: Final = 0
FAST: Final = 1
NOT_YET: Final = 2
# A waiter: its peer, what it is told (taken as proven), whether proven as it came, and how
# much of its body has come.
Waiter = tuple[str, "asyncio.Future[bool]", bool, Callable[[], int]]


class Refused(Exception):
    """Too many waiting: of the peer, or of all strangers (or all proven peers)."""


class Proven:
    """Peers whose delivery passed the check lately: the last ``size`` of them, each for
    ``seconds`` since its last; the one proven longest ago goes first."""

    def __init__(
        self,
        size: int = PROVEN_PEERS,
        seconds: float = PROVEN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.seconds = seconds
        self._clock = clock
        self._at: OrderedDict[str, float] = OrderedDict()

    def remember(self, peer: str) -> None:
        self._at.pop(peer, None)
        self._at[peer] = self._clock()
        while len(self._at) > self.size:
            self._at.popitem(last=False)

    def __contains__(self, peer: object) -> bool:
        at = self._at.get(str(peer))
        if at is None:
            return False
        if self._clock() - at > self.seconds:
            del self._at[str(peer)]
            return False
        return True

    def __len__(self) -> int:
        return len(self._at)


class Shares:
    """``places`` shared out by peer: one holds at most ``share`` of them, and ``kept`` of
    them are for proven peers only. A place that comes free goes to a proven peer's waiter
    first, then to the peer that waits holding the fewest, among those to the one given a place
    longest ago (a peer that held and waited for none since: never), and among a peer's own
    waiters, to the first come. So a peer waits behind its own, not behind the waiters of
    others: with many peers waiting, one that comes is given the next place. A request with no
    peer (a Unix socket: all its callers are one) is held to no share and no peer's bound.

    :meth:`acquire` says whether the place was taken as a proven peer's; :meth:`release` is
    told it back (a peer proven while it holds a stranger's place gives back a stranger's)."""

    def __init__(
        self,
        places: int,
        share: int,
        *,
        kept: int = 0,
        proven: Proven | None = None,
        max_waiting: int = MAX_WAITING,
        peer_waiting: int = PEER_WAITING,
    ) -> None:
        self.places = places
        self.share = share
        self.kept = kept
        self.proven = Proven() if proven is None else proven
        self.max_waiting = max_waiting
        self.peer_waiting = peer_waiting
        self.taken = 0
        self.strangers = 0  # of the places taken, those taken as strangers'
        self.held: dict[str, int] = {}
        self._waiters: list[Waiter] = []
        self._given = 0
        self._given_at: dict[str, int] = {}  # when each peer holding or waiting last took one

    def full(self) -> bool:
        return self.taken >= self.places

    def waiting(self) -> int:
        return len(self._waiters)

    def take_now(self, peer: str) -> bool | None:
        """A place for ``peer`` now if it may have one (whether taken as proven), or None."""
        proven = peer in self.proven
        if self._may(peer, proven) and not self.full():
            # None who may take it waits: a release (or a proof) would have given it.
            return self._take(peer, proven)
        return None

    async def acquire(
        self, peer: str, seconds: float, come: Callable[[], int] = lambda: NOT_YET
    ) -> bool:
        """Take a place for ``peer`` within ``seconds`` (whether as proven), or TimeoutError;
        Refused at once when too many wait. ``come`` says how much of its body has come while
        it waited (:data:`WHOLE`, :data:`FAST`, :data:`NOT_YET`; when it changes, call
        :meth:`give`)."""
        taken = self.take_now(peer)
        if taken is not None:
            return taken
        proven = peer in self.proven
        if peer and sum(1 for p, *_ in self._waiters if p == peer) >= self.peer_waiting:
            raise Refused
        if sum(1 for _, _, was, _ in self._waiters if was == proven) >= self.max_waiting:
            self._push_out(proven)
        waiter = (peer, asyncio.get_running_loop().create_future(), proven, come)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter[1], seconds)
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter[1].done() and not waiter[1].cancelled() and not waiter[1].exception():
                self.release(peer, waiter[1].result())  # given its place as it gave up
            # In every case: a release in the same turns may have dropped it from the list
            # (its future cancelled) and left the peer's turn behind.
            self._forget(peer)
            raise

    def _push_out(self, proven: bool) -> None:
        """Room among the waiters of a newcomer's kind (``proven`` or strangers) when they are
        at their bound: the oldest whose body has not come is refused (Refused); none such,
        the newcomer is. Refusing newcomers alone, 256 strangers idle after their headers had
        a whole, signed delivery from a new address refused at once while the kept place,
        which its body may take, was free: its body is listened for only once it waits."""
        for waiter in self._waiters:
            _, future, was, come = waiter
            if was == proven and not future.done() and come() == NOT_YET:
                self._waiters.remove(waiter)
                future.set_exception(Refused())
                return
        raise Refused

    def release(self, peer: str, proven: bool = False) -> None:
        self.taken -= 1
        if not proven:
            self.strangers -= 1
        left = self.held.pop(peer) - 1
        if left:
            self.held[peer] = left
        self._forget(peer)
        self.give()

    def prove(self, peer: str) -> None:
        """Remember ``peer`` as proven: a waiter of its may take a kept place now."""
        self.proven.remember(peer)
        self.give()

    def give(self) -> None:
        """Give the free places to the waiters whose turn it is."""
        self._waiters = [w for w in self._waiters if not w[1].done()]
        while not self.full():
            turns = []
            for i, (p, _, _, come) in enumerate(self._waiters):
                proven, came = p in self.proven, come()
                if self._may(p, proven, came == WHOLE):
                    held, given_at = self.held.get(p, 0), self._given_at.get(p, -1)
                    turns.append((not proven, came, held, given_at, i))
            if not turns:
                return
            turn = min(turns)
            peer, future, _, _ = self._waiters.pop(turn[-1])
            future.set_result(self._take(peer, not turn[0]))

    def _may(self, peer: str, proven: bool, whole: bool = False) -> bool:
        """Whether ``peer`` may take a free place: within its share, and a kept one only when
        proven or its body has come whole (it is checked in a moment and leaves)."""
        if peer and self.held.get(peer, 0) >= self.share:
            return False
        return proven or whole or self.strangers < self.places - self.kept

    def _take(self, peer: str, proven: bool) -> bool:
        self.taken += 1
        if not proven:
            self.strangers += 1
        self.held[peer] = self.held.get(peer, 0) + 1
        self._given += 1
        self._given_at[peer] = self._given
        return proven

    def _forget(self, peer: str) -> None:
        """Drop when ``peer`` was last given a place once it holds none and waits for none:
        what is kept is bounded by those waiting."""
        if peer not in self.held and all(p != peer for p, *_ in self._waiters):
            self._given_at.pop(peer, None)
