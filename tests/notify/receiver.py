"""A real webhook receiver on 127.0.0.1 for the notification tests: it records each request,
checks ``X-Signature`` against its secret, and can be told to fail the first requests."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signed_correctly: bool | None  # None: no secret to check against

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.failures_left = 0
        self.fail_status = 500
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
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
                        Received(self.path, dict(self.headers.items()), body, signed)
                    )
                    failing = receiver.failures_left > 0
                    if failing:
                        receiver.failures_left -= 1
                status = receiver.fail_status if failing else 200
                if receiver.secret is not None and not signed:
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

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
def receiving(secret: bytes | None = None) -> Iterator[Receiver]:
    receiver = Receiver(secret)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(5)
