"""A response body longer than the run keeps is marked as cut, as a command's output is, against
a real HTTP server: by ``Content-Length``, a body that ends, and one that never does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from tests.helpers import serve_http

KEPT = 64 * 1024
CHUNK = 4096
ENDLESS_CAP = 64 * 1024 * 1024  # "endless": a client that reads it all has a bug, not a hang


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 (the default): the connection closes when the handler returns.
    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        kind, _, size = self.path.strip("/").partition("/")
        if kind == "length":  # /length/<n>: n bytes, with a Content-Length
            self._sized(b"a" * int(size))
        elif kind == "binary":  # /binary/<n>: n undecodable bytes, with a Content-Length
            self._sized(b"\xff" * int(size))
        elif kind == "chunked":  # /chunked/<n>: n bytes in chunks, then the end
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            self._chunks(int(size))
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "held":  # /held/<n>: a Content-Length of n, KEPT bytes, then nothing
            self.send_response(200)
            self.send_header("Content-Length", size)
            self.end_headers()
            self.wfile.write(b"a" * KEPT)
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.rfile.read(1)  # until the client goes away
        elif kind == "endless":  # chunks until the client goes away
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            # The client closes the connection once it has read what it wanted.
            with contextlib.suppress(OSError):
                self._chunks(ENDLESS_CAP)

    def _sized(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunks(self, size: int) -> None:
        while size > 0:
            n = min(CHUNK, size)
            self.wfile.write(b"%x\r\n%s\r\n" % (n, b"a" * n))
            size -= n


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_http(Handler) as url:
        yield url


def run(url: str) -> Outcome:
    action = HttpAction.model_validate({"url": url, "timeoutSeconds": 10})
    outcome = asyncio.run(HttpRun(action, env={}).run())
    assert (outcome.status, outcome.exit_code) == (RunStatus.SUCCEEDED, 200), outcome.message
    return outcome


@pytest.mark.parametrize("path", [f"/length/{KEPT}", f"/chunked/{KEPT}", "/length/5"])
def test_a_body_that_fits_is_kept_whole_and_unmarked(server: str, path: str) -> None:
    size = int(path.rsplit("/", 1)[1])
    assert run(f"{server}{path}").output == "a" * size


@pytest.mark.parametrize("extra", [1, 1024 * 1024])
def test_a_longer_body_says_how_many_bytes_were_left_out(server: str, extra: int) -> None:
    outcome = run(f"{server}/length/{KEPT + extra}")
    assert outcome.output == "a" * KEPT + f"\n[... {extra} bytes truncated ...]"


@pytest.mark.parametrize("path", [f"/chunked/{KEPT + 1}", "/endless"])
def test_a_longer_body_of_unknown_length_is_marked_and_not_read_to_its_end(
    server: str, path: str
) -> None:
    # The endless body succeeds within the timeout: the head was read, not the rest.
    outcome = run(f"{server}{path}")
    assert outcome.output == "a" * KEPT + "\n[... more bytes truncated ...]"


def test_a_body_cut_by_its_decoding_says_how_many_bytes_were_left_out(server: str) -> None:
    # Each undecodable byte is stored as U+FFFD, three bytes: a third of them fits.
    outcome = run(f"{server}/binary/{KEPT}")
    kept = KEPT // 3
    assert outcome.output == "\ufffd" * kept + f"\n[... {KEPT - kept} bytes truncated ...]"


def test_a_smaller_limit_cuts_and_marks_the_same(server: str) -> None:
    action = HttpAction.model_validate({"url": f"{server}/length/100", "timeoutSeconds": 10})
    outcome = asyncio.run(HttpRun(action, env={}, output_limit=10).run())
    assert outcome.output == "a" * 10 + "\n[... 90 bytes truncated ...]"


def test_a_body_of_known_length_is_not_waited_for_past_the_limit(server: str) -> None:
    # The server declares 1 MiB, sends what is kept and stops sending: the length says that
    # more would come, so the run does not wait (until its timeout) for a byte it would drop.
    outcome = run(f"{server}/held/{KEPT + 1024 * 1024}")
    assert outcome.output == "a" * KEPT + f"\n[... {1024 * 1024} bytes truncated ...]"
