"""A real webhook receiver on 127.0.0.1 for the notification tests: it records each request
(and when it came), checks ``X-Signature`` against its secret, and can be told to fail the
first requests (with ``fail_headers``: ``Retry-After``), or to answer in a hostile way
(``answer``: :func:`slow_headers`, :class:`EndlessBody`)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Writes the whole response itself; returns when ``closing`` is set, at the latest.
Answer = Callable[[BaseHTTPRequestHandler, threading.Event], None]


def slow_headers(interval: float) -> Answer:
    """A status line, then one byte of a header every ``interval`` seconds, for ever."""

    def answer(handler: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        try:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not closing.wait(interval):
                handler.wfile.write(b"x")
        except OSError:
            pass  # the client has gone

    return answer


def slow_body(interval: float) -> Answer:
    """200 with a body of 1 000 bytes, written one byte every ``interval`` seconds."""

    def answer(handler: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        try:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            while not closing.wait(interval):
                handler.wfile.write(b"x")
        except OSError:
            pass  # the client has gone

    return answer


class EndlessBody:
    """200 and a chunked body written as fast as the client takes it, until the client goes
    away or ``cap`` bytes are written (a bound for the test, not for the client)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.written = 0
        self.done = threading.Event()

    def __call__(self, handler: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        chunk = b"x" * 65536
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        try:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while self.written < self.cap and not closing.is_set():
                handler.wfile.write(frame)
                self.written += len(frame)
        except OSError:
            pass  # the client has gone
        finally:
            self.done.set()


@dataclasses.dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signed_correctly: bool | None  # None: no secret to check against
    at: float = 0.0  # time.monotonic() when it came
    port: int = 0  # the client's port: one per connection

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(
        self, secret: bytes | None = None, *, keep_alive: bool = False, gzipped: bool = False
    ) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.failures_left = 0
        self.fail_status = 500
        self.fail_headers: dict[str, str] = {}
        self.answer: Answer | None = None
        self.closing = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # keep_alive: HTTP/1.1 and a short body (as Slack's "ok"), so a client may send
            # its next request over the same connection.
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                signed = None
                if receiver.secret is not None:
                    expected = (
                        "sha256=" + hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
                    )
                    given = self.headers.get("X-Signature", "")
                    signed = hmac.compare_digest(given, expected)
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            self.path,
                            dict(self.headers.items()),
                            body,
                            signed,
                            time.monotonic(),
                            self.client_address[1],
                        )
                    )
                    failing = receiver.failures_left > 0
                    if failing:
                        receiver.failures_left -= 1
                if receiver.answer is not None:
                    receiver.answer(self, receiver.closing)
                    self.close_connection = True
                    return
                status = receiver.fail_status if failing else 200
                if receiver.secret is not None and not signed:
                    status = 401
                self.send_response(status)
                for name, value in (receiver.fail_headers if failing else {}).items():
                    self.send_header(name, value)
                answer = b"ok" if keep_alive else b""
                if gzipped:  # a receiver's compressed answer: never decoded, so never read
                    answer = gzip.compress(answer)
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[str]:
        with self._lock:
            return [r.json.get("event", "slack") for r in self.received]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} requests received, {count} expected")
            time.sleep(0.02)


@contextmanager
def receiving(
    secret: bytes | None = None, *, keep_alive: bool = False, gzipped: bool = False
) -> Iterator[Receiver]:
    receiver = Receiver(secret, keep_alive=keep_alive, gzipped=gzipped)
    # A short poll: shutdown() waits for the serving loop to look up, 0.5 s by default, at the
    # end of every test that receives.
    thread = threading.Thread(target=receiver.server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.closing.set()
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(5)
