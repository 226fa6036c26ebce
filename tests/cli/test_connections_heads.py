"""The HTTP server at its bounds on connections: the connection waiting longest for a request
head makes room for a new one, first among those of an address past its share; only when none
is waiting is the new one closed. Real uvicorn, real sockets, from several loopback addresses
(127.0.0.2, 127.0.0.3, ... are all this host's on Linux)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from reconciler.cli import connections
from tests.cli.test_connections import request, response
from tests.helpers import wait_for

Scope = dict[str, Any]
HALF_HEAD = b"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\n"  # and never the blank line
# A whole head, and a body that never comes: a request being answered, not a head awaited.
HELD = b"POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"


HOLDING: list[object] = []  # one entry per /hold request whose head the server has read


async def app(scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["path"] == "/hold":
        HOLDING.append(scope)
        await receive()  # waits for the body
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def dropped(sock: socket.socket) -> bool:
    """True when the server ends the connection (within the socket's 5 s timeout): aborted,
    it resets one whose bytes it had not read."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class Served:
    def __init__(self, server: uvicorn.Server, stack: contextlib.ExitStack) -> None:
        self.server = server
        self.port: int = server.servers[0].sockets[0].getsockname()[1]
        self.stack = stack

    def connect(self, source: str, first: bytes) -> socket.socket:
        """A connection from ``source``, closed at the end of the test, that has sent
        ``first``. The server takes connections in the order they were opened (the kernel's
        queue of them is first in, first out); a /hold request is returned once it is read."""
        holding = len(HOLDING)
        sock = socket.create_connection(
            ("127.0.0.1", self.port), timeout=5, source_address=(source, 0)
        )
        self.stack.enter_context(sock)
        sock.sendall(first)
        if first == HELD:
            wait_for("the request to be read", lambda: len(HOLDING) > holding or None)
        return sock

    def open_connections(self) -> int:
        return len(self.server.server_state.connections)

    def answered(self, source: str) -> bool:
        with socket.create_connection(
            ("127.0.0.1", self.port), timeout=5, source_address=(source, 0)
        ) as sock:
            sock.sendall(request())
            return b"200 OK" in response(sock)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int, int], Served]]:
    """A server keeping ``max_connections``, ``per_peer`` of them from one address. No head
    timeout within a test: what closes a connection here is room being made."""
    monkeypatch.setattr(connections, "HEAD_SECONDS", 60.0)
    HOLDING.clear()
    servers: list[uvicorn.Server] = []
    threads: list[threading.Thread] = []
    with contextlib.ExitStack() as stack:

        def start(max_connections: int, per_peer: int) -> Served:
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                lifespan="off",
                http=connections.guarded(max_connections, per_peer),
                log_level="warning",
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            wait_for("uvicorn to start", lambda: server.started or None)
            servers.append(server)
            threads.append(thread)
            return Served(server, stack)

        yield start
        for server in servers:
            server.should_exit = True
    for thread in threads:
        thread.join(timeout=10)


def test_one_address_holding_more_half_heads_than_the_limit_leaves_room_for_requests(
    serve: Callable[[int, int], Served],
) -> None:
    served = serve(8, 64)
    busy = served.connect("127.0.0.2", HELD)  # the oldest, but being answered: it stays
    halves = [served.connect("127.0.0.2", HALF_HEAD) for _ in range(12)]
    # 13 opened, 8 kept: the five oldest half heads made room for the ones after them.
    assert all(dropped(sock) for sock in halves[:5])
    wait_for("eight to be kept", lambda: served.open_connections() == 8 or None)
    assert served.answered("127.0.0.2")
    assert served.answered("127.0.0.3")
    busy.sendall(b"0123456789")
    assert b"200 OK" in response(busy)


def test_an_address_past_its_share_makes_room_from_its_own(
    serve: Callable[[int, int], Served],
) -> None:
    served = serve(16, 4)
    other = [served.connect("127.0.0.3", HALF_HEAD) for _ in range(2)]  # older than them all
    mine = [served.connect("127.0.0.2", HALF_HEAD) for _ in range(4)]
    served.connect("127.0.0.2", HALF_HEAD)
    assert dropped(mine[0])
    assert served.answered("127.0.0.2")
    # The other address's connections, the oldest of the server, are untouched.
    for sock in other:
        sock.sendall(b"\r\n")
        assert b"200 OK" in response(sock)


def test_an_address_with_its_share_in_requests_is_refused_others_are_not(
    serve: Callable[[int, int], Served],
) -> None:
    served = serve(16, 4)
    held = [served.connect("127.0.0.2", HELD) for _ in range(4)]
    with socket.create_connection(
        ("127.0.0.1", served.port), timeout=5, source_address=("127.0.0.2", 0)
    ) as extra:
        assert dropped(extra)
    assert served.answered("127.0.0.3")
    for sock in held:
        sock.sendall(b"0123456789")
        assert b"200 OK" in response(sock)


def test_an_idle_keep_alive_waits_for_a_head_and_makes_room_too(
    serve: Callable[[int, int], Served],
) -> None:
    served = serve(4, 4)
    idle = served.connect("127.0.0.2", request())
    assert b"200 OK" in response(idle)
    for _ in range(3):
        served.connect("127.0.0.3", HELD)
    assert served.answered("127.0.0.4")
    assert dropped(idle)


def test_when_none_is_waiting_for_a_head_a_new_connection_is_closed(
    serve: Callable[[int, int], Served],
) -> None:
    served = serve(4, 4)
    held = [served.connect(f"127.0.0.{n}", HELD) for n in range(2, 6)]
    with socket.create_connection(
        ("127.0.0.1", served.port), timeout=5, source_address=("127.0.0.6", 0)
    ) as extra:
        assert dropped(extra)
    held[0].sendall(b"0123456789")
    assert b"200 OK" in response(held[0])
    held[0].close()
    wait_for("one to be let go", lambda: served.open_connections() == 3 or None)
    assert served.answered("127.0.0.6")
