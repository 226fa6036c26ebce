"""A crontask API that misbehaves on purpose: a real HTTP server on 127.0.0.1 whose every
answer is written by the test (``server.answer = ...``), raw, so that it can lie about its
length, drip, never end, or say anything at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.cli.main import main


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(self.path)
        self.server.answer(self)

    do_POST = do_GET

    def send(self, status: int, body: object, content_type: str = "application/json") -> None:
        """``body`` as JSON (a ``str`` or ``bytes`` as it is), with its length."""
        if isinstance(body, bytes):
            data = body
        else:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answer: Callable[[Handler], None] = lambda h: h.send(200, {"items": []})
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()  # answers that pace themselves end when it is set

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hung up on an answer it refused: that is the point


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopped.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def cli(*argv: str) -> int:
    """``crontask ARGV...`` in this process (its output for capsys): the exit status."""
    try:
        main(list(argv))
    except SystemExit as exc:
        if isinstance(exc.code, str):  # as the interpreter does: the message, status 1
            print(exc.code, file=sys.stderr)
            return 1
        return int(exc.code or 0)
    raise AssertionError("crontask's main returned instead of exiting")


def crontask(*argv: str, timeout: float, env: dict[str, str] | None = None) -> Finished:
    """``crontask ARGV...`` as a process of its own, with ``env`` added to a copy of this
    one's environment (``$CRONTASK_TOKEN`` left out); how long it took."""
    environ = {k: v for k, v in os.environ.items() if k != "CRONTASK_TOKEN"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Finished(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@dataclass(frozen=True)
class Finished:
    code: int
    out: str
    err: str
    seconds: float


def assert_one_line_error(code: int, err: str, says: str, status: int = 1) -> None:
    """Exit status ``status`` and one line on stderr, ``crontask: ...``, that contains ``says``."""
    assert "Traceback" not in err, err
    assert code == status, err
    assert err.startswith("crontask: "), err
    assert err.count("\n") == 1, err
    assert says in err, err
