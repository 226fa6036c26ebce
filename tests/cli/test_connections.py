"""The HTTP server's connections: a client that never finishes a request head, or opens more
connections than the server keeps, cannot hold its descriptors. Real uvicorn, real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from reconciler import hostnames
from reconciler.cli import connections
from tests.helpers import wait_for

Scope = dict[str, Any]


async def app(scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["path"] == "/slow":
        await asyncio.sleep(0.5)  # an answer that takes longer than a head may
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class Served:
    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server
        self.port: int = server.servers[0].sockets[0].getsockname()[1]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def open_connections(self) -> int:
        return len(self.server.server_state.connections)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setattr(connections, "HEAD_SECONDS", 0.3)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        http=connections.guarded(4),
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("uvicorn to start", lambda: server.started or None)
    yield Served(server)
    server.should_exit = True
    thread.join(timeout=10)


def request(path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def response(sock: socket.socket) -> bytes:
    """One whole response (this app's are chunked)."""
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(1024)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection (within the socket's 5 s timeout)."""
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


def test_a_head_that_never_ends_is_closed(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert closed_by_server(sock)


def test_a_connection_that_sends_nothing_is_closed(served: Served) -> None:
    with served.connect() as sock:
        assert closed_by_server(sock)


def test_the_next_head_on_a_kept_alive_connection_is_held_to_it_too(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(request())
        assert b"200 OK" in response(sock)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        assert closed_by_server(sock)


def test_an_answer_may_take_longer_than_a_head(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(request("/slow"))
        assert b"200 OK" in response(sock)


def test_a_connection_beyond_the_limit_drops_the_oldest_that_sent_nothing(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More in tests/cli/test_connections_heads.py."""
    monkeypatch.setattr(connections, "HEAD_SECONDS", 30.0)
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(served.connect()) for _ in range(4)]
        wait_for("the server to hold four", lambda: served.open_connections() == 4 or None)
        with served.connect() as sock:
            sock.sendall(request())
            assert b"200 OK" in response(sock)
        assert closed_by_server(held[0])


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        # One host may send from any address of its /64: all of them share one count.
        ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # a dual-stack socket's IPv4 client
        ("fe80::1%eth0", "fe80::/64"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_an_address_is_counted_with_its_network(address: str, counted_as: str) -> None:
    assert hostnames.peer_of(address) == counted_as
