"""A slow server does not hold the informer. A watch that only sends keep-alive bytes (blank
lines, spaces) is left once its timeoutSeconds and the grace have passed, its connection closed,
and the collection re-listed; a list page whose body trickles is cut once the read timeout and
the grace have passed, a failed list the source's status names, retried after the backoff; and
stop() cuts a list page being read.

Against a real HTTP server on localhost that trickles, with deadlines of a fraction of a second
given through the informer's options; the tests wait for effects (lists, closed connections,
errors), never for a time."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from reconciler.sources.kubernetes import KubernetesSource, list_function
from reconciler.sources.kubernetes_watch import Backoff, Informer
from reconciler.sources.kubernetes_wire import Overdue, lines, read_body
from tests.helpers import wait_for

PACE = 0.02  # seconds between two bytes (or keep-alives) the server sends


class Server(ThreadingHTTPServer):
    """Answers LISTs (at once up to ``trickled_from``, then one byte every PACE seconds) and
    WATCHes (empty, or ``keep_alive`` every PACE seconds, forever); counts the LISTs and the
    bodies the client closed before their end."""

    def __init__(self, keep_alive: bytes | None = None, trickled_from: int = 1_000) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.keep_alive = keep_alive
        self.trickled_from = trickled_from
        self.lists = 0
        self.closed = 0  # bodies the client cut
        self.sent = 0  # bytes of trickled bodies
        self.done = threading.Event()
        self.lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def cut(self) -> None:
        with self.lock:
            self.closed += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if "watch=true" in self.path:
            self.watch()
        else:
            self.list()

    def watch(self) -> None:
        keep_alive = self.server.keep_alive
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if keep_alive is None:  # a watch that ends at once
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while not self.server.done.wait(PACE):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(keep_alive), keep_alive))
                self.wfile.flush()
        except OSError:
            self.server.cut()

    def list(self) -> None:
        with self.server.lock:
            self.server.lists += 1
            number = self.server.lists
        page = {"metadata": {"resourceVersion": str(number)}, "items": [], "padding": " " * 10_000}
        body = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if number < self.server.trickled_from:
            self.wfile.write(body)
            return
        try:
            for byte in body:
                if self.server.done.wait(PACE):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                with self.server.lock:
                    self.server.sent += 1
        except OSError:
            self.server.cut()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[Server] = []

    def start(**kwargs: Any) -> Server:
        server = Server(**kwargs)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.done.set()
        server.shutdown()
        server.server_close()


def informer_of(server: Server, **options: Any) -> Informer:
    configuration = client.Configuration()
    configuration.host = server.host
    return Informer(
        list_function(client.ApiClient(configuration), "default"),
        on_change=lambda keys: None,
        backoff=Backoff(initial=0.01, cap=0.02),
        **options,
    )


@pytest.mark.parametrize("keep_alive", [b"\n", b" "], ids=["blank-lines", "spaces"])
def test_a_watch_sending_only_keep_alives_is_left_and_the_collection_re_listed(
    serve: Any, keep_alive: bytes
) -> None:
    server = serve(keep_alive=keep_alive)
    informer = informer_of(server, resync_seconds=0.5, watch_seconds=1.0, watch_grace=0.2)
    assert informer.start(5.0)
    try:
        wait_for("a re-list", lambda: informer.lists >= 2, timeout=10)
        assert informer.overdue >= 1
        assert informer.reconnects >= 1
        # Closed, not handed back to the pool with the stream still coming.
        wait_for("the watch's connection closed", lambda: server.closed >= 1)
    finally:
        informer.stop()


def test_a_list_page_that_trickles_is_cut_and_the_list_retried(serve: Any) -> None:
    server = serve(trickled_from=2)  # the first list answers at once, the re-lists trickle
    informer = informer_of(server, resync_seconds=0.3, list_seconds=0.3, watch_grace=0.2)
    source = KubernetesSource(None, "default", informer=informer)
    assert source.start(5.0)
    try:
        wait_for("two failed re-lists", lambda: informer.failures >= 2, timeout=10)
        assert server.lists >= 3
        assert informer.lists == 1
        error = source.status().last_error or ""
        assert error.startswith("Overdue: a list page not in after 0.5 s"), error
        wait_for("the list's connection closed", lambda: server.closed >= 1)
    finally:
        source.stop()


def test_stop_cuts_a_list_page_being_read(serve: Any) -> None:
    server = serve(trickled_from=1)
    informer = informer_of(server)  # the default deadline: 60 s and 30 s of grace
    assert not informer.start()
    wait_for("the page coming", lambda: server.sent >= 2)
    informer.stop(timeout=5.0)
    assert informer._thread is not None
    assert not informer._thread.is_alive()
    wait_for("the list's connection closed", lambda: server.closed >= 1)
    assert informer.lists == 0


# -- the readers alone, on a clock that moves a second a read ------------------------------------


class Endless:
    """A response that never ends: ``stream`` and ``read1`` give ``chunk`` again and again."""

    def __init__(self, chunk: bytes) -> None:
        self.chunk = chunk

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        return itertools.repeat(self.chunk)

    def read1(self, amt: int) -> bytes:
        return self.chunk


def ticking() -> Any:
    return itertools.count().__next__


@pytest.mark.parametrize("keep_alive", [b"\n", b" ", b"{}\n"])
def test_watch_lines_end_at_the_deadline_whatever_comes(keep_alive: bytes) -> None:
    seen: list[str] = []
    with pytest.raises(Overdue, match="a watch still open after its deadline"):
        seen.extend(lines(Endless(keep_alive), deadline=10, clock=ticking()))
    assert set(seen) <= {"{}"}


def test_a_list_body_ends_at_its_deadline() -> None:
    with pytest.raises(Overdue, match=r"a list page not in after 90 s \(12 bytes came\)"):
        read_body(Endless(b"x"), ticking(), 10, 90)
