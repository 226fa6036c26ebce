"""A stranger that reads a streamed answer slowly (a public asset, ``/docs/assets/...``) holds
no place in admission while it reads: as many such clients as there are places, each with an
answer the kernel's buffers cannot take, leave the API to everyone else. A known caller's answer
(a token's) keeps its place until sent: the places bound how many answers built whole are held
for slow readers. Real uvicorn with crontask's connections, real sockets; an app that streams as
a ``FileResponse`` does."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from reconciler.api.admission import Admission
from reconciler.api.door import busy
from reconciler.api.routing import ROLE_SCOPE_KEY
from reconciler.cli import connections
from tests.helpers import wait_for

BIG = 8 << 20  # more than the kernel's buffers of a loopback connection take
PLACES = 2


class Streaming:
    """``/big``: 8 MiB in 64 KiB parts, each written once the transport has room (uvicorn's
    ``send`` waits for it), as a FileResponse is; ``/big?known``, the same to a caller the
    route has authenticated (it gives the request a role, as ``routing.authorize`` does);
    anything else: a small answer."""

    def __init__(self) -> None:
        self.streaming = 0  # answers started and not finished

    async def __call__(
        self, scope: Any, receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["query_string"] == b"known":
            scope[ROLE_SCOPE_KEY] = "viewer"
        if scope["path"] != "/big":  # said small (its length) only on /tiny
            said = [(b"content-length", b"2")] if scope["path"] == "/tiny" else []
            await send({"type": "http.response.start", "status": 200, "headers": said})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        self.streaming += 1
        try:
            headers = [(b"content-length", str(BIG).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for _ in range(BIG >> 16):
                await send(
                    {"type": "http.response.body", "body": b"x" * (1 << 16), "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
        finally:
            self.streaming -= 1


@pytest.fixture(params=[(64, 8)])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[uvicorn.Server, Streaming]]:
    inner = Streaming()
    strangers, share = request.param
    # A short wait at the door: the refusal, if any, comes in a second, not thirty.
    app = Admission(
        inner,
        busy,
        max_active=PLACES,
        wait_seconds=1.0,
        max_strangers=strangers,
        stranger_share=share,
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", http=connections.guarded(64)
    )
    config.log_level = "warning"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("uvicorn to start", lambda: server.started or None)
    yield server, inner
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize(("target", "other_status"), [("/big", 200), ("/big?known", 503)])
def test_slow_readers_of_a_streamed_answer_leave_the_places_to_others_unless_known(
    served: tuple[uvicorn.Server, Streaming], target: str, other_status: int
) -> None:
    server, inner = served
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    slow: list[socket.socket] = []
    try:
        for _ in range(PLACES):  # one per place, each pipelining a second request behind
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            sock.connect((host, port))
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 2)
            slow.append(sock)
        # Each is being streamed, and stuck writing: its reader does not keep up.
        wait_for("every slow answer to be streaming", lambda: inner.streaming == PLACES or None)
        other = http.client.HTTPConnection(host, port, timeout=10)
        try:
            other.request("GET", "/api/v1/tasks")
            answer = other.getresponse()
            answer.read()
            assert answer.status == other_status
        finally:
            other.close()
        assert inner.streaming == PLACES  # still streaming to the slow: nothing was cut
    finally:
        for sock in slow:
            sock.close()


def get(host: str, port: int, target: str, source: str = "127.0.0.1") -> int:
    other = http.client.HTTPConnection(host, port, timeout=10, source_address=(source, 0))
    try:
        other.request("GET", target)
        answer = other.getresponse()
        answer.read()
        return answer.status
    finally:
        other.close()


def held_by_slow_readers(host: str, port: int, inner: Streaming) -> list[socket.socket]:
    """PLACES connections from 127.0.0.1 whose /big answers wait on their readers."""
    slow: list[socket.socket] = []
    for _ in range(PLACES):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect((host, port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.append(sock)
    wait_for("every slow answer to be streaming", lambda: inner.streaming == PLACES or None)
    return slow


@pytest.mark.parametrize("served", [(64, PLACES)], indirect=True)
def test_one_peer_holds_at_most_its_share_of_strangers_answers(
    served: tuple[uvicorn.Server, Streaming],
) -> None:
    server, inner = served
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    slow = held_by_slow_readers(host, port, inner)
    try:
        assert get(host, port, "/small") == 503  # its peer's share is held
        assert get(host, port, "/small", source="127.0.0.2") == 200  # another peer's is not
        assert get(host, port, "/tiny") == 200  # small: written whole at once, not counted
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.parametrize("served", [(PLACES, 8)], indirect=True)
def test_strangers_answers_are_bounded_and_keep_out_only_strangers(
    served: tuple[uvicorn.Server, Streaming],
) -> None:
    """As many strangers' answers as ``max_strangers`` being sent to slow readers: another
    stranger's answer is a 503 at once (what each holds is bounded in all, not only per
    connection), and a known caller still gets in."""
    server, inner = served
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    slow = held_by_slow_readers(host, port, inner)
    try:
        assert get(host, port, "/small") == 503
        assert get(host, port, "/small?known") == 200
        assert inner.streaming == PLACES
    finally:
        for sock in slow:
            sock.close()
