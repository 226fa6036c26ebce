"""``/metrics`` under clients that do not read: what its answers hold in the process is bounded,
a scrape past the bound is a 503 at once, and a burst of scrapes is rendered once. Real uvicorn
with crontask's connection guard, real sockets with a 4 KiB receive buffer that never read."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import cast

import pytest
import uvicorn

from reconciler.api import routes_metrics
from reconciler.api.app import create_app
from reconciler.api.problems import PROBLEM_MEDIA_TYPE
from reconciler.cli import connections
from reconciler.cli.connections import GuardedH11Protocol
from reconciler.sinks.metrics import CONTENT_TYPE, Metrics, accepts_gzip
from tests.api.fakes import FakeRuntime
from tests.helpers import wait_for

# More than a loopback connection's kernel buffers take from a reader that does not read (a few
# MB): the rest of such an answer can only wait in the process, or not be written yet.
LINE = b"crontask_padding_for_a_large_scrape 1\n"
BODY = LINE * (16 * 1024 * 1024 // len(LINE))
# What one answer may leave unsent in the process: a piece over asyncio's 64 KiB high-water
# mark, and the response head; the whole 16 MB without the bound.
MOST_UNSENT = routes_metrics.CHUNK + 64 * 1024 + 4096


class BigMetrics(Metrics):
    """Metrics whose text is :data:`BODY` (7.6 MB at 10 000 tasks is the real one), counting
    how many times it is rendered."""

    def __init__(self) -> None:
        super().__init__()
        self.renders = 0

    def render(self, accept_encoding: str = "") -> tuple[bytes, dict[str, str]]:
        self.renders += 1
        headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
        if accepts_gzip(accept_encoding):
            headers["Content-Encoding"] = "gzip"
            return gzip.compress(BODY, 1), headers
        return BODY, headers


class Served:
    def __init__(self, server: uvicorn.Server, metrics: BigMetrics) -> None:
        self.server = server
        self.metrics = metrics
        self.port: int = server.servers[0].sockets[0].getsockname()[1]

    def scrape(self, encoding: str = "identity") -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/metrics", headers={"Accept-Encoding": encoding})
        response = conn.getresponse()
        response.read()  # http.client keeps what it read: .read() again gives b""
        conn.close()
        return response

    def scrape_body(self, encoding: str = "identity") -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/metrics", headers={"Accept-Encoding": encoding})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, body

    def non_reader(self) -> socket.socket:
        """A connection that asks for the plain text and never reads the answer."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.port))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return sock

    def connections(self) -> list[GuardedH11Protocol]:
        return [cast(GuardedH11Protocol, c) for c in list(self.server.server_state.connections)]

    def paused(self) -> int:
        """How many connections have more unsent than the transport's high-water mark."""
        return sum(1 for c in self.connections() if c.flow.write_paused)


@contextlib.contextmanager
def serve() -> Iterator[Served]:
    metrics = BigMetrics()
    app = create_app(FakeRuntime([]), auth=None, metrics=metrics)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        http=connections.guarded(64),
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("uvicorn to start", lambda: server.started or None)
    try:
        yield Served(server, metrics)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def served() -> Iterator[Served]:
    with serve() as served:
        yield served


def hold_every_place(served: Served, stack: contextlib.ExitStack) -> list[socket.socket]:
    """As many non-readers as there are places, each with its answer stuck (writes paused)."""
    held = [stack.enter_context(served.non_reader()) for _ in range(routes_metrics.MAX_ANSWERS)]
    wait_for(
        "every place held by an answer nobody reads",
        lambda: served.paused() == routes_metrics.MAX_ANSWERS or None,
    )
    return held


def test_an_answer_nobody_reads_leaves_little_of_itself_in_the_process(served: Served) -> None:
    with contextlib.ExitStack() as stack:
        hold_every_place(served, stack)
        unsent = {id(c): c.transport.get_write_buffer_size() for c in served.connections()}
        assert max(unsent.values()) <= MOST_UNSENT


def test_a_scrape_past_the_bound_is_refused_at_once_and_served_once_a_place_is_free(
    served: Served,
) -> None:
    with contextlib.ExitStack() as stack:
        held = hold_every_place(served, stack)
        response = served.scrape()
        assert response.status == 503
        assert response.getheader("Retry-After") == "1"
        assert response.getheader("Content-Type") == PROBLEM_MEDIA_TYPE
        for sock in held:
            sock.close()  # the server sees the reset, its send returns, the place is free

        def whole() -> bytes | None:
            status, body = served.scrape_body()
            return body if status == 200 else None

        assert wait_for("a place to come back", whole) == BODY


def test_the_refusal_is_a_problem(served: Served) -> None:
    with contextlib.ExitStack() as stack:
        hold_every_place(served, stack)
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        conn.request("GET", "/metrics")
        problem = json.loads(conn.getresponse().read())
        conn.close()
        assert problem["status"] == 503
        assert problem["instance"] == "/metrics"
        assert problem["detail"] == routes_metrics.BUSY


def test_a_burst_of_scrapes_is_rendered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(routes_metrics, "monotonic", lambda: now[0])
    with serve() as served:
        assert served.scrape_body() == (200, BODY)
        assert served.scrape_body() == (200, BODY)
        assert served.metrics.renders == 1
        now[0] += routes_metrics.REUSE_SECONDS
        assert served.scrape_body() == (200, BODY)
        assert served.metrics.renders == 2
        status, gzipped = served.scrape_body("gzip")  # http.client does not decode it
        assert (status, gzip.decompress(gzipped)) == (200, BODY)
        assert served.metrics.renders == 3  # each encoding is its own body


def test_head_gets_the_length_and_no_body(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request("HEAD", "/metrics")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Length") == str(len(BODY))
    assert response.read() == b""
    conn.close()
