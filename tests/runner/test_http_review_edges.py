"""The HTTP action against a real server whose answers httpx reads its own way: a redirect to a
``Location`` httpx cannot parse, a connection reset, a body framed both by chunks and by a
``Content-Length``; a status above 599 and credentials in the URL beside an ``Authorization``
header (warnings, not refusals: both run as before); and a failure at a proxy, or one that never
answers, which the message names."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from reconciler import httpclient
from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus, truncation_marker
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from tests.helpers import serve_http

KEPT = 64 * 1024
CHUNK = 100_000  # more than KEPT, sent in one chunk


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 (the default): the connection closes when the handler returns.
    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        kind, _, value = self.path.lstrip("/").partition("/")
        if kind == "to":  # a redirect to what follows the first "/" of the path, as written
            self.wfile.write(
                b"HTTP/1.1 307 Temporary Redirect\r\nLocation: "
                + value.encode()
                + b"\r\nContent-Length: 0\r\n\r\n"
            )
        elif kind == "999":  # LinkedIn's refusal; the body says what Authorization came
            said = repr(self.headers.get_all("Authorization")).encode()
            self.wfile.write(
                b"HTTP/1.1 999 Request denied\r\nContent-Length: %d\r\n\r\n%s" % (len(said), said)
            )
        elif kind == "reset":
            # SO_LINGER 0: closing sends a RST, not a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif kind == "te-cl":
            # Transfer-Encoding overrides Content-Length (RFC 9112 6.3): the body is the chunk.
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"%x\r\n" % CHUNK
                + b"y" * CHUNK
                + b"\r\n0\r\n\r\n"
            )


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_http(Handler) as url:
        yield url


def run(url: str, **fields: Any) -> Outcome:
    action = HttpAction.model_validate({"url": url, "timeoutSeconds": 10, **fields})
    return asyncio.run(HttpRun(action, env={}).run())


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        # No "//" nor "/": its hidden part is shown without a slash it did not have.
        ("mailto:ops@example.com", "mailto:***"),
        ("urn:isbn:1", "urn:***"),
        ("mailto:ops@example.com?subject=s3cret", "mailto:***?subject=***"),
        ("http://h:abc/hooks/secret", "http://h:abc/***"),
    ],
)
def test_a_redirect_to_a_location_httpx_cannot_parse_keeps_its_status(
    server: str, location: str, shown: str
) -> None:
    # httpx builds the request it would follow even when it follows none: these raised an
    # error that lost the 307 and blamed the task's URL.
    accepted = run(f"{server}/to/{location}", expectStatus="300-399")
    assert (accepted.status, accepted.exit_code, accepted.reason) == (
        RunStatus.SUCCEEDED,
        307,
        None,
    )
    assert accepted.message == f"HTTP 307 Temporary Redirect, Location: {shown}"
    refused = run(f"{server}/to/{location}")
    assert (refused.status, refused.exit_code, refused.reason) == (
        RunStatus.FAILED,
        307,
        "UnexpectedStatus",
    )
    assert refused.message == (
        f"HTTP 307 Temporary Redirect, Location: {shown} "
        "(expected 200-299; a redirect is not followed)"
    )


def test_a_connection_reset_says_so(server: str) -> None:
    outcome = run(f"{server}/reset")
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert outcome.message is not None
    # It was "ReadError ()": httpx's, httpcore's and anyio's errors have no text of their own.
    assert outcome.message.endswith(": ReadError (Connection reset by peer)"), outcome.message


def test_a_chunked_body_is_not_cut_at_a_content_length_beside_it(server: str) -> None:
    outcome = run(f"{server}/te-cl")
    assert outcome.status is RunStatus.SUCCEEDED
    # Cut at the limit, and said to be (how much more is not known: the rest was not read).
    assert outcome.output == "y" * KEPT + f"\n{truncation_marker(None)}"


@pytest.fixture
def down_proxy(monkeypatch: pytest.MonkeyPatch) -> str:
    """``HTTP_PROXY``: a loopback port where nothing listens; the proxy as a message names it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://user:pw-QWERTY@127.0.0.1:{port}")
    return f"127.0.0.1:{port} ($HTTP_PROXY)"


def test_a_failure_at_the_proxy_names_it(down_proxy: str) -> None:
    outcome = run("http://example.invalid/hooks/some-secret-path")
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert outcome.message == (
        "GET http://example.invalid/***: cannot connect (Connection refused) "
        f"through proxy {down_proxy}"
    )


@pytest.mark.parametrize(
    ("ranges", "status"), [("999", RunStatus.SUCCEEDED), ("200", RunStatus.FAILED)]
)
def test_a_status_above_599_is_read_and_the_url_s_credentials_are_sent_as_before(
    server: str, ranges: str, status: RunStatus
) -> None:
    # Both were refused at validation: a file holding such a task stopped all of its tasks.
    # Its run is as before: the URL's credentials go, the header's do not (a warning says so).
    url = server.replace("http://", "http://user:pw@", 1) + "/999"
    headers = [{"name": "Authorization", "value": "Bearer from-the-header"}]
    outcome = run(url, expectStatus=ranges, headers=headers)
    assert (outcome.status, outcome.exit_code) == (status, 999)
    # One Authorization, the URL's as Basic (kept hidden in what the run keeps).
    assert outcome.output == repr(["Basic ***"])


@pytest.fixture
def hung_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``HTTP_PROXY``: a loopback port that takes connections (the kernel's backlog) and never
    answers; the proxy as a message names it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        port = listening.getsockname()[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://user:pw-QWERTY@127.0.0.1:{port}")
        yield f"127.0.0.1:{port} ($HTTP_PROXY)"


def test_a_proxy_that_never_answers_is_named(hung_proxy: str) -> None:
    # The run's deadline (asyncio's) fires before httpx's read timeout: its error carries no
    # request, and the proxy was not named.
    outcome = run("http://example.invalid/hooks/some-secret-path", timeoutSeconds=0.5)
    assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
    assert outcome.message == (
        f"GET http://example.invalid/***: no response within 0.5s through proxy {hung_proxy}"
    )


def test_the_client_s_own_response_hooks_still_run_beside_the_location_s(server: str) -> None:
    # httpclient.async_client (notifications' too) moves a Location aside after the hooks it
    # is given, which still run, and see it.
    seen: list[tuple[int, str | None]] = []

    async def hook(response: httpx.Response) -> None:
        seen.append((response.status_code, response.headers.get("location")))

    async def main() -> str | None:
        async with httpclient.async_client(timeout=10, event_hooks={"response": [hook]}) as c:
            response = await c.get(f"{server}/to/mailto:ops@example.com")
            return httpclient.redirect_location(response)

    assert asyncio.run(main()) == "mailto:ops@example.com"
    assert seen == [(307, "mailto:ops@example.com")]
