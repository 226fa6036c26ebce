"""Strangers trickling bodies to the git webhook behind a well-formed fake signature (it cannot
be checked before the whole body is in), against real uvicorn over real sockets:

- a body that falls behind the webhook's floor rate once its grace is over is answered 408 and
  closed then, not at the end of the 10 s every body has: a trickler at a byte a second held
  one of the webhook's places for all of them;
- one address holds at most its share of the webhook's places, and a free place goes to the
  address holding the fewest: 12 tricklers delayed a signed delivery from another address for
  29 s (GitHub gives up after 10 s), while now it is answered before they are;
- a real sender is not refused for what GitHub does: several deliveries at once from one
  address, a large body that pauses past the grace once it has sent enough;
- how the places are shared out (in-process): strangers from many addresses, each waiting
  before it, do not keep a newcomer from the next place.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from reconciler.api.admission import BODY_SECONDS, HOOK_GRACE, HOOK_SHARE, Admission
from reconciler.api.hook_places import Shares
from tests.api.fakes import FakeRuntime
from tests.api.test_admission import settle
from tests.api.test_hook_bodies import (
    FAKE_SIGNATURE,
    HOOK,
    STRANGERS,
    Served,
    head,
    push,
    serving,
    signed,
)
from tests.helpers import wait_for

STRANGER = "127.0.0.2"  # another loopback address: the strangers' own peer


class Hooked(Served):
    def __init__(self, port: int, runtime: FakeRuntime, app: Any) -> None:
        super().__init__(port, runtime)
        self.app = app

    def admission(self) -> Admission:
        """The app's Admission middleware, built once the app has served a request."""
        layer = self.app.middleware_stack
        while not isinstance(layer, Admission):
            layer = layer.app
        return layer


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[Hooked]:
    with serving(tmp_path) as (port, runtime, app):
        served = Hooked(port, runtime, app)
        body = b"{}"
        assert served.post(HOOK, body, signed(body))[0] == 202  # builds the middleware stack
        runtime.syncs.clear()
        yield served


class Trickler(threading.Thread):
    """The reviewer's slow.py from another address: a delivery of 100 000 bytes promised under
    a fake signature, then a byte a second until answered or stopped; what came back, when."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = stop
        self.answer: bytes | None = None
        self.answered = threading.Event()
        self.started = 0.0

    def run(self) -> None:
        address = ("127.0.0.1", self.port)
        with socket.create_connection(address, timeout=60, source_address=(STRANGER, 0)) as sock:
            self.started = time.monotonic()
            sock.sendall(head(HOOK, self.port, 100_000, FAKE_SIGNATURE))
            sock.settimeout(1.0)  # the pace: a byte each second the server says nothing
            try:
                while not self.stop.is_set():
                    sock.sendall(b"a")
                    try:
                        self.answer = sock.recv(4096)
                    except TimeoutError:
                        continue
                    while chunk := sock.recv(4096):  # the rest of the answer, to its close
                        self.answer += chunk
                    break
            except OSError:
                self.answer = b""  # closed under the byte being sent: answered all the same
        self.answered.set()


def test_a_signed_delivery_is_answered_before_tricklers_from_another_address(
    hooked: Hooked,
) -> None:
    admission = hooked.admission()
    stop = threading.Event()
    strangers = [Trickler(hooked.port, stop) for _ in range(STRANGERS)]
    for stranger in strangers:
        stranger.start()
    try:
        # Every stranger is in or waits at the door before the deliveries come.
        wait_for(
            "the strangers to be inside or waiting",
            lambda: admission.active + admission.hooks.waiting() == STRANGERS,
        )
        body = b'{"ref":"refs/heads/main"}'
        # GitHub may deliver several at once from one address: more than its share.
        with ThreadPoolExecutor(HOOK_SHARE + 1) as pool:
            statuses = list(pool.map(lambda _: hooked.post(HOOK, body, signed(body))[0], range(3)))
        waiting = [s for s in strangers if not s.answered.is_set()]
        assert statuses == [202] * 3
        # Answered before the strangers were: at most two turns of their places (each ends
        # at the floor's grace) went by, not the three rounds of 10 s that made it 29 s.
        assert len(waiting) >= STRANGERS - 2 * HOOK_SHARE, len(waiting)
        assert hooked.runtime.syncs == ["git"] * 3
    finally:
        stop.set()
        for stranger in strangers:
            stranger.join(timeout=BODY_SECONDS * 4)


def test_a_body_behind_the_floor_is_408_at_the_end_of_its_grace(hooked: Hooked) -> None:
    """A stranger's body that stops after its first byte is answered by the floor's 408, not
    by the 10 s every body has: its words say which. The sender sends nothing more, so the
    answer is not lost to a byte sent after the server closed (a reset then discards it)."""
    address = ("127.0.0.1", hooked.port)
    with socket.create_connection(
        address, timeout=BODY_SECONDS * 4, source_address=(STRANGER, 0)
    ) as sock:
        sock.sendall(head(HOOK, hooked.port, 100_000, FAKE_SIGNATURE) + b"a")
        answer = b""
        while chunk := sock.recv(4096):  # to its close
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in answer.lower()
    assert b"slower than" in answer  # the floor's words (BELOW_FLOOR), not SLOW_BODY's


def test_a_large_delivery_that_pauses_past_the_grace_is_taken(hooked: Hooked) -> None:
    """What came before the pause keeps it above the floor: the floor is over the whole body,
    not each moment of it."""
    body = push(512)
    half = len(body) // 2
    with hooked.connect(timeout=BODY_SECONDS * 2) as sock:
        extra = [f"{k}: {v}" for k, v in signed(body).items()]
        sock.sendall(head(HOOK, hooked.port, len(body), *extra) + body[:half])
        time.sleep(HOOK_GRACE * 1.5)  # the pace of this sender: a pause past the grace
        sock.sendall(body[half:])
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 202 "), answer
    assert hooked.runtime.syncs == ["git"]


def test_a_free_place_goes_to_the_peer_holding_fewest_then_given_one_longest_ago() -> None:
    async def scenario() -> None:
        shares = Shares(places=2, share=2)
        for peer in ("a", "b"):
            await shares.acquire(peer, 1)
        order: list[str] = []

        async def wait(peer: str) -> None:
            await shares.acquire(peer, 30)
            order.append(peer)

        # The strangers a and b hold the places and wait for more; c comes after them all.
        waiting = [asyncio.create_task(wait(p)) for p in ("a", "a", "b", "b", "c")]
        await settle()
        for peer, given in [("a", "c"), ("b", "a"), ("c", "b"), ("a", "a"), ("a", "b")]:
            shares.release(peer)
            await settle()
            assert order[-1] == given, (peer, order)
        assert all(task.done() for task in waiting)
        assert (shares.taken, shares.held) == (2, {"b": 2})  # none else waits: its share

    asyncio.run(scenario())


def test_one_peer_holds_its_share_and_one_that_gives_up_leaves_no_trace() -> None:
    async def scenario() -> None:
        shares = Shares(places=3, share=1)
        await shares.acquire("a", 1)
        with pytest.raises(TimeoutError):  # a place is free, but not a's to take
            await shares.acquire("a", 0.01)
        for _ in range(2):  # no peer (a Unix socket): no share
            await shares.acquire("", 1)
        assert (shares.taken, shares.held) == (3, {"a": 1, "": 2})
        later = asyncio.create_task(shares.acquire("b", 30))
        await settle()
        shares.release("")
        await settle()
        assert later.done()  # the place the one gone would have had
        for peer in ("a", "b", ""):
            shares.release(peer)
        assert (shares.taken, shares.held) == (0, {})

    asyncio.run(scenario())
