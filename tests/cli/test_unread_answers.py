"""An answer its client never reads is dropped, with its connection, once it stops moving
(``cli/connections.py``); one read slowly is sent whole. Real uvicorn, real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from reconciler.cli import connections
from tests.helpers import wait_for

BIG = 8 << 20  # more than the kernel's buffers of a loopback connection take


streamed = threading.Event()


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["path"] == "/stream":  # as a FileResponse sends: uvicorn waits to write each part
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(BIG >> 16):
            await send({"type": "http.response.body", "body": b"x" * (1 << 16), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        streamed.set()  # the request, and its place in admission, is over
        return
    # Written in one piece, as a JSONResponse is: the request is over as soon as it is written.
    headers = [(b"content-length", str(BIG).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"x" * BIG})


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[uvicorn.Server]:
    monkeypatch.setattr(connections, "HEAD_SECONDS", 0.3)
    monkeypatch.setattr(connections, "WRITE_SECONDS", 0.5)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", http=connections.guarded(8)
    )
    config.log_level = "warning"
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    wait_for("uvicorn to start", lambda: served.started or None)
    yield served
    served.should_exit = True
    thread.join(timeout=10)


def asking(
    server: uvicorn.Server, receive_buffer: int | None = None, path: str = "/"
) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:  # before connecting: it sets the window the server sees
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(server.servers[0].sockets[0].getsockname())
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def test_an_answer_never_read_is_dropped_with_its_connection(
    server: uvicorn.Server,
) -> None:
    with asking(server, receive_buffer=4096):
        wait_for("the request to be answered", lambda: server.server_state.total_requests or None)
        # close() alone, at the head deadline, would wait for a read that never comes.
        wait_for("the connection to be dropped", lambda: not server.server_state.connections)


def test_a_streamed_answer_never_read_ends_its_request(server: uvicorn.Server) -> None:
    streamed.clear()
    with asking(server, receive_buffer=4096, path="/stream"):
        # Without a write deadline the app waited to write for good, inside admission.
        wait_for("the request to end", lambda: streamed.is_set() or None)
        wait_for("the connection to be dropped", lambda: not server.server_state.connections)


def test_an_answer_read_slowly_is_sent_whole(server: uvicorn.Server) -> None:
    received = 0
    with asking(server) as sock:
        # Longer in all than WRITE_SECONDS, never that long without reading.
        while chunk := sock.recv(256 << 10):
            received += len(chunk)
            time.sleep(0.05)
    assert received > BIG


def test_a_reader_the_kernels_queue_keeps_busy_is_not_cut(server: uvicorn.Server) -> None:
    """The kernel holds megabytes of the answer: a client reading steadily drains them for
    longer than WRITE_SECONDS while the process's own buffer does not move."""
    received = 0
    with asking(server) as sock:
        time.sleep(0.3)  # the kernel's queue fills, and the process's buffer waits behind it
        while chunk := sock.recv(64 << 10):
            received += len(chunk)
            time.sleep(0.025)  # about 2.5 MB a second: seconds before the buffer moves
    assert received > BIG
