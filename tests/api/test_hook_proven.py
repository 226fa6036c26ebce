"""The webhook's place kept for peers proven lately, its waiters' own bound, and what a waiter
that gives up leaves behind (``hook_places``), against real uvicorn over real sockets where the
strangers come from many loopback addresses (127.0.0.0/8):

- senders at the floor rate (2 from each of 2 addresses) and one-off tricklers each from its
  own address held and awaited every place: a signed delivery from a peer proven before waited
  until a floor sender's 10 s were over; now it is answered while they all still send;
- a waiter whose caller closed is dropped at once, and waiters are bounded by peer and in all,
  apart from the other requests';
- a waiter that gives up in the same turns as a release left its peer's turn behind.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import MutableMapping
from typing import Any

import pytest

from reconciler.api.admission import BODY_SECONDS, MAX_HOOK_BODIES, Admission
from reconciler.api.door import busy
from reconciler.api.hook_places import FAST, NOT_YET, WHOLE, Proven, Refused, Shares
from tests.api.test_admission import SlowApp, call, settle
from tests.api.test_hook_bodies import FAKE_SIGNATURE, HOOK, head, signed
from tests.api.test_hook_tricklers import Hooked, hooked  # noqa: F401 (a fixture)
from tests.helpers import wait_for

FLOOR_RATE = 17 * 1024  # just above the webhook's floor: a sender kept in for its 10 s
ONE_OFF = 40  # tricklers, each from an address of its own


class Sender(threading.Thread):
    """A delivery of 1 MiB promised under a fake signature from ``address``, sent at ``rate``
    bytes a second until answered or stopped; whether it was answered."""

    def __init__(self, port: int, address: str, rate: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.address, self.rate, self.stop = port, address, rate, stop
        self.answered = threading.Event()

    def run(self) -> None:
        try:
            with socket.create_connection(
                ("127.0.0.1", self.port), timeout=60, source_address=(self.address, 0)
            ) as sock:
                sock.sendall(head(HOOK, self.port, 1 << 20, FAKE_SIGNATURE))
                sock.settimeout(0.05)  # the pace: a piece each time the server says nothing
                started, sent = time.monotonic(), 0
                while not self.stop.is_set():
                    due = max(int((time.monotonic() - started) * self.rate), 1) - sent
                    if due > 0:
                        sock.sendall(b"a" * due)
                        sent += due
                    try:
                        if sock.recv(4096):
                            break
                    except TimeoutError:
                        continue
                    break
        except OSError:
            pass  # closed under a piece being sent: answered all the same
        self.answered.set()


@pytest.mark.slow
def test_a_proven_peers_delivery_is_answered_while_strangers_hold_every_place(
    hooked: Hooked,  # noqa: F811 (the fixture)
) -> None:
    """127.0.0.1 is proven by the fixture's signed delivery."""
    admission = hooked.admission()
    stop = threading.Event()
    floor = [Sender(hooked.port, f"127.2.0.{k // 2 + 1}", FLOOR_RATE, stop) for k in range(4)]
    addresses = (f"127.1.{i // 250}.{i % 250 + 1}" for i in itertools.count())
    one_off = [Sender(hooked.port, next(addresses), 1, stop) for _ in range(ONE_OFF)]
    try:
        for sender in floor:
            sender.start()
        wait_for(
            "the floor senders to hold or await every place",
            lambda: admission.hooks.taken + admission.hooks.waiting() == len(floor),
        )
        for sender in one_off:
            sender.start()
        wait_for(
            "the one-off tricklers to wait too",
            lambda: admission.hooks.waiting() >= len(floor) + ONE_OFF - MAX_HOOK_BODIES,
        )
        body = b'{"ref":"refs/heads/main"}'
        assert hooked.post(HOOK, body, signed(body))[0] == 202
        # Before any floor sender's 10 s were over: it did not wait for their places.
        assert not any(sender.answered.is_set() for sender in floor)
        assert hooked.runtime.syncs == ["git"]
    finally:
        stop.set()
        for sender in floor + one_off:
            sender.join(timeout=BODY_SECONDS * 2)


def test_waiters_are_bounded_by_peer_and_in_all_proven_peers_apart() -> None:
    async def scenario() -> None:
        proven = Proven()
        proven.remember("p")
        shares = Shares(places=1, share=1, proven=proven, max_waiting=3, peer_waiting=2)
        assert await shares.acquire("x", 1) is False  # a stranger holds the one place
        waiting = [asyncio.create_task(shares.acquire(p, 30)) for p in ("a", "a", "b")]
        await settle()
        with pytest.raises(Refused):  # a's bound
            await shares.acquire("a", 30)
        # At the strangers' bound a newcomer pushes out the oldest whose body has not come.
        newcomer = asyncio.create_task(shares.acquire("c", 30))
        await settle()
        assert waiting[0].done()
        assert isinstance(waiting[0].exception(), Refused)
        assert not newcomer.done()
        waiting[0] = newcomer
        mine = asyncio.create_task(shares.acquire("p", 30))  # proven: not the strangers' bound
        await settle()
        assert not mine.done()
        shares.release("x")
        await settle()
        assert mine.done()  # first among the waiters
        assert mine.result() is True
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        shares.release("p", True)
        assert (shares.taken, shares.held, shares.waiting()) == (0, {}, 0)

    asyncio.run(scenario())


def test_a_whole_body_from_a_new_address_is_not_refused_at_the_strangers_bound() -> None:
    """256 strangers idle after their headers fill the strangers' waiters: a delivery from an
    address never proven pushes out the oldest of them (its body is listened for only once it
    waits), and once its body has come whole it takes the kept place. It was refused at once,
    a 503, while the kept place was free."""

    async def scenario() -> None:
        shares = Shares(4, 2, kept=1, max_waiting=256)
        for peer in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
            assert shares.take_now(peer) is False  # the strangers' 3 places
        idle = [
            asyncio.create_task(shares.acquire(f"10.1.0.{i // 64}", 30, lambda: NOT_YET))
            for i in range(256)
        ]
        await settle()
        came = [NOT_YET]
        delivery = asyncio.create_task(shares.acquire("192.30.252.1", 30, lambda: came[0]))
        await settle()
        assert isinstance(idle[0].exception(), Refused)  # the oldest idle one, pushed out
        assert not delivery.done()
        came[0] = WHOLE  # its first message: the whole body
        shares.give()
        await settle()
        assert delivery.result() is False  # a stranger's, in the kept place
        assert shares.taken == 4
        for task in idle:
            task.cancel()
        await asyncio.gather(*idle, return_exceptions=True)

    asyncio.run(scenario())


def test_a_place_is_kept_for_proven_peers() -> None:
    async def scenario() -> None:
        shares = Shares(places=2, share=2, kept=1)
        assert await shares.acquire("x", 1) is False
        with pytest.raises(TimeoutError):  # a place is free, but kept
            await shares.acquire("y", 0.01)
        shares.prove("g")
        assert await shares.acquire("g", 1) is True
        assert (shares.taken, shares.strangers) == (2, 1)

    asyncio.run(scenario())


def test_a_waiter_giving_up_as_a_place_is_released_leaves_no_trace() -> None:
    """The reviewer's shares_race.py: the waiter, cancelled, is dropped from the list by a
    release in the same turns; its peer's turn was kept (200 entries after 200 rounds)."""

    async def scenario() -> None:
        shares = Shares(places=1, share=1)
        for i in range(20):
            peer = f"10.0.0.{i}"
            await shares.acquire(peer, 1)
            other = asyncio.create_task(shares.acquire("x", 30))
            await settle()
            again = asyncio.create_task(shares.acquire(peer, 30))
            await settle()
            shares.release(peer)  # x is given the place; peer waits, holding none
            await settle()
            again.cancel()
            await asyncio.sleep(0)
            shares.release("x")  # in the same turns as the cancel
            await settle()
            await asyncio.gather(again, return_exceptions=True)
            await other
        assert (shares.taken, shares.held, shares._given_at) == (0, {}, {})

    asyncio.run(scenario())


def test_a_waiter_whose_caller_closed_is_dropped_at_once() -> None:
    """Callers that closed right after their headers stayed listed until their 30 s were
    over; their close is seen while they wait (uvicorn's receive says it at once)."""

    async def scenario() -> None:
        inner = SlowApp()
        admission = Admission(inner, busy, max_hooks=1, hook_kept=0, wait_seconds=30)
        holder = asyncio.create_task(call(admission, HOOK))
        await settle()
        closed = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await closed.wait()
            return {"type": "http.disconnect"}

        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "path": HOOK, "method": "POST", "headers": []}
        gone = asyncio.create_task(admission(scope, receive, send))
        await settle()
        assert admission.hooks.waiting() == 1
        closed.set()  # its caller closes while it waits
        await settle()
        assert gone.done()
        assert (admission.hooks.waiting(), sent) == (0, [])  # no one to answer
        inner.release.set()
        assert await holder == 200
        assert (admission.hooks.taken, admission.hooks.held) == (0, {})

    asyncio.run(scenario())


def test_a_body_come_whole_takes_a_kept_place_before_strangers_still_sending() -> None:
    """A first delivery from an address never proven: its body came whole while it waited, so
    it is checked in a moment; strangers still trickling theirs wait behind it."""

    async def scenario() -> None:
        shares = Shares(places=2, share=1, kept=1)
        assert await shares.acquire("x", 1) is False  # a stranger holds the strangers' place
        trickling = asyncio.create_task(shares.acquire("y", 30))
        come = NOT_YET
        delivery = asyncio.create_task(shares.acquire("g", 30, lambda: come))
        await settle()
        assert not delivery.done()  # the place left is kept
        come = WHOLE
        shares.give()
        await settle()
        assert delivery.done()
        assert not trickling.done()
        shares.release("g")
        shares.release("x")
        await settle()
        assert trickling.done()

    asyncio.run(scenario())


def test_a_body_come_fast_goes_before_tricklers_come_first() -> None:
    async def scenario() -> None:
        shares = Shares(places=1, share=1)
        await shares.acquire("x", 1)
        trickling = asyncio.create_task(shares.acquire("y", 30))  # first come, a byte so far
        await settle()
        delivery = asyncio.create_task(shares.acquire("g", 30, lambda: FAST))
        await settle()
        shares.release("x")
        await settle()
        assert delivery.done()
        assert not trickling.done()
        shares.release("g")
        await settle()
        assert trickling.done()

    asyncio.run(scenario())


def test_an_unsigned_request_that_waits_is_not_told_to_send_its_body(
    hooked: Hooked,  # noqa: F811 (the fixture)
) -> None:
    """A request that waits for ``100 Continue`` is not listened to while it waits for a
    place: asking for its body told it to send it (a 100) before its signature was looked at.
    With no signature, once its turn comes it is refused 401 before its body is read."""
    admission = hooked.admission()
    stop = threading.Event()
    floor = [
        Sender(hooked.port, address, FLOOR_RATE, stop)
        for address in ("127.2.0.1", "127.2.0.1", "127.2.0.2")
    ]
    try:
        for sender in floor:
            sender.start()
        wait_for("the strangers' 3 places held", lambda: admission.hooks.taken == 3)
        with socket.create_connection(
            ("127.0.0.1", hooked.port), timeout=BODY_SECONDS * 3, source_address=("127.4.0.1", 0)
        ) as sock:
            sock.sendall(head(HOOK, hooked.port, 1 << 20, "Expect: 100-continue"))
            wait_for("it waits for a place", lambda: admission.hooks.waiting() == 1)
            stop.set()  # the floor senders go: a place comes free
            first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 401 "), first
    finally:
        stop.set()
        for sender in floor:
            sender.join(timeout=BODY_SECONDS * 3)
