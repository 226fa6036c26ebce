"""The HTTP action against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from tests.helpers import serve_http

RELEASE = threading.Event()
# The headers of each /echo request as the server received them: the run's output shows the
# valueFrom ones as *** (runner.http.Secrets).
SEEN: list[dict[str, str]] = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client read what it keeps and left (a large body, a timeout): expected

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._send(200, b"all good")
        elif self.path == "/unavailable":
            self._send(503, b"try later")
        elif self.path == "/echo":
            SEEN.append({k.lower(): v for k, v in self.headers.items()})
            self._send(200, json.dumps(dict(self.headers.items())).encode(), "application/json")
        elif self.path == "/big":
            self._send(200, b"x" * (1024 * 1024))
        elif self.path == "/hang":
            RELEASE.wait(10)
            self._send(200, b"late")
        elif self.path == "/compressible":
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(b"plain text")
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self._send(200, b"plain text")
        elif self.path == "/long-reason":
            self.send_response(500, "R" * 15_000)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/garbage":
            self.wfile.write(b"HTTP/1.1 " + b"G" * 15_000 + b"\r\n\r\n")
        elif self.path in ("/drip-body", "/drip-headers"):
            # A byte well within every per-read timeout, for ever (until the client goes).
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            if self.path == "/drip-body":
                self.wfile.write(b"Content-Length: 1000000\r\n\r\n")
            while not RELEASE.is_set():
                try:
                    self.wfile.write(b"x" if self.path == "/drip-body" else b"X-A: b\r\n")
                    self.wfile.flush()
                except OSError:
                    return
                RELEASE.wait(0.05)
        else:
            self._send(404, b"no such thing")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self._send(201, b"got " + body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_http(Handler) as url:
        yield url
        RELEASE.set()  # handlers still held let go before the server stops


def run(action: dict[str, Any], env: dict[str, str] | None = None, **kw: Any) -> Outcome:
    return asyncio.run(HttpRun(HttpAction.model_validate(action), env=env or {}, **kw).run())


def test_success_records_status_and_body(server: str) -> None:
    outcome = run({"url": f"{server}/ok"})
    assert (outcome.status, outcome.exit_code, outcome.reason) == (RunStatus.SUCCEEDED, 200, None)
    assert outcome.message == "HTTP 200 OK"
    assert outcome.output == "all good"


def test_unexpected_status_fails_with_a_clear_message(server: str) -> None:
    outcome = run({"url": f"{server}/unavailable"})
    assert (outcome.status, outcome.exit_code, outcome.reason) == (
        RunStatus.FAILED,
        503,
        "UnexpectedStatus",
    )
    assert outcome.message == "HTTP 503 Service Unavailable (expected 200-299)"
    assert outcome.output == "try later"


def test_expect_status_lists_and_ranges(server: str) -> None:
    assert (
        run({"url": f"{server}/missing", "expectStatus": "200,404"}).status is RunStatus.SUCCEEDED
    )
    assert run({"url": f"{server}/ok", "expectStatus": "204"}).status is RunStatus.FAILED


def test_method_and_body(server: str) -> None:
    outcome = run({"url": f"{server}/hook", "method": "POST", "body": '{"a": 1}'})
    assert (outcome.exit_code, outcome.output) == (201, 'got {"a": 1}')


def test_headers_literal_from_env_and_from_file(server: str, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("file-secret\n")
    action = {
        "url": f"{server}/echo",
        "headers": [
            {"name": "X-Plain", "value": "v"},
            {"name": "Authorization", "valueFrom": {"env": "API_TOKEN"}},
            {"name": "X-File", "valueFrom": {"file": str(secret)}},
        ],
    }
    outcome = run(
        action, env={"API_TOKEN": "Bearer env-secret"}, extra_headers={"X-Crontask-Run-Id": "r1"}
    )
    seen = SEEN[-1]
    assert seen["x-plain"] == "v"
    assert seen["authorization"] == "Bearer env-secret"
    assert seen["x-file"] == "file-secret"
    assert seen["x-crontask-run-id"] == "r1"
    # The echo is stored with the valueFrom values hidden, the literal one as it is.
    shown = {k.lower(): v for k, v in json.loads(outcome.output).items()}
    assert (shown["x-plain"], shown["authorization"], shown["x-file"]) == ("v", "***", "***")


def test_a_missing_secret_fails_without_revealing_anything(server: str) -> None:
    action = {
        "url": f"{server}/ok",
        "headers": [{"name": "Authorization", "valueFrom": {"env": "NOPE"}}],
    }
    outcome = run(action)
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "InvalidHeader")
    assert outcome.message == "header 'Authorization': environment variable NOPE is not set"


@pytest.mark.parametrize(
    "source",
    [
        pytest.param({"file": "token"}, id="a newline from a file"),
        pytest.param({"env": "API_TOKEN"}, id="non-ASCII from the environment"),
    ],
)
def test_an_invalid_secret_fails_without_revealing_it(
    server: str, tmp_path: Path, source: dict[str, str]
) -> None:
    (tmp_path / "token").write_text("Bearer s3cret\nX-Injected: 1\n")
    if "file" in source:
        source = {"file": str(tmp_path / source["file"])}
    action = {"url": f"{server}/ok", "headers": [{"name": "Authorization", "valueFrom": source}]}
    outcome = run(action, env={"API_TOKEN": "Bearer s3crét"})
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "InvalidHeader")
    assert "s3cr" not in outcome.message
    assert outcome.message.startswith("header 'Authorization': ")


def test_the_body_is_recorded_uncompressed(server: str) -> None:
    assert run({"url": f"{server}/compressible"}).output == "plain text"
    # A task that asks for an encoding gets it.
    asked = {"url": f"{server}/echo", "headers": [{"name": "Accept-Encoding", "value": "gzip"}]}
    assert json.loads(run(asked).output)["Accept-Encoding"] == "gzip"


@pytest.mark.parametrize("path", ["/long-reason", "/garbage"])
def test_what_a_server_says_is_clipped_in_the_message(server: str, path: str) -> None:
    outcome = run({"url": f"{server}{path}"})
    assert outcome.status is RunStatus.FAILED
    assert len(outcome.message) < 1000


def test_only_the_head_of_a_large_body_is_kept(server: str) -> None:
    outcome = run({"url": f"{server}/big"}, output_limit=1000)
    assert outcome.output == "x" * 1000 + f"\n[... {1024 * 1024 - 1000} bytes truncated ...]"


def test_connection_refused(unused_port: int) -> None:
    outcome = run({"url": f"http://127.0.0.1:{unused_port}/"})
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert "cannot connect" in outcome.message


def test_a_webhook_path_is_not_in_the_message(unused_port: int) -> None:
    # Slack's, Discord's, Telegram's hooks carry their secret in the path: a run message is
    # stored, shown to viewers and sent in notifications.
    url = f"http://hook-user:pw@127.0.0.1:{unused_port}/services/T0/B0/SeCrEt?token=t0k"
    outcome = run({"url": url})
    assert outcome.reason == "RequestFailed"
    assert outcome.message.startswith(f"GET http://127.0.0.1:{unused_port}/***?token=***: ")
    for secret in ("SeCrEt", "services", "t0k", "pw", "hook-user"):
        assert secret not in outcome.message


def test_timeout(server: str) -> None:
    outcome = run({"url": f"{server}/hang", "timeoutSeconds": 0.3})
    assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
    assert outcome.message.endswith("no response within 0.3s")


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers"])
def test_a_server_dripping_bytes_cannot_outlast_the_timeout(server: str, path: str) -> None:
    # httpx's own timeout is per read: a byte every 50 ms would hold the attempt for ever.
    async def main() -> Outcome:
        attempt = HttpRun(
            HttpAction.model_validate({"url": f"{server}{path}", "timeoutSeconds": 0.3}), env={}
        )
        return await asyncio.wait_for(attempt.run(), 10)

    began = time.monotonic()
    outcome = asyncio.run(main())
    assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
    assert time.monotonic() - began < 5
    if path == "/drip-body":
        # The status came: it is kept, and the message says what did not come in time.
        assert outcome.exit_code == 200
        assert outcome.message.endswith(
            ": HTTP 200 OK; response body not complete within 0.3s; "
            "not retried: the server took the request (HTTP 200)"
        )
        assert not outcome.retryable  # the server took it: a retry would send it again
        assert outcome.output.startswith("x")
    else:
        assert outcome.exit_code is None
        assert outcome.message.endswith(": no response within 0.3s")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        # What the definition's check passes (it has no IDNA tables) and httpx refuses.
        pytest.param(
            "http://\N{PILE OF POO}.la/",
            "GET http://\N{PILE OF POO}.la/: not a URL a request can go to: Invalid IDNA hostname:"
            " '\N{PILE OF POO}.la'",
            id="IDNA-refused-name",
        ),
        pytest.param(
            "https://xn--ls8h.la/",
            "GET https://xn--ls8h.la/: not a URL a request can go to: Codepoint U+1F4A9 at"
            " position 1 of '\N{PILE OF POO}' not allowed",
            id="IDNA-refused-A-label",
        ),
    ],
)
def test_a_url_the_client_refuses_fails_in_one_line(url: str, said: str) -> None:
    # It used to escape run(): "ActionError: the action failed unexpectedly", a traceback.
    outcome = run({"url": url})
    assert (outcome.status, outcome.reason, outcome.message) == (
        RunStatus.FAILED,
        "RequestFailed",
        said,
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://1.2.3.4/",
        "http://256.256.256.256/",
        "http://01.2.3.4/",
        "http://1.2.3.4.5/",
        "http://[::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[v1.x]/",
        "http://[::g]/",
        "https://xn--/",
        "https://xn--a-/",
        "https://xn--zz-1/",
        "https://xn---bbk/",  # a second spelling of xn--bbk
        "https://xn--bbk/",
        "https://xn--bcher-kva.example/",
        "https://xn--bcher-kva.xn--/",
        "http://a.xn--/",
        "http://h%zz/",
    ],
)
def test_the_definition_refuses_a_host_when_the_client_does(url: str) -> None:
    # The model checks hosts by httpx's rules without httpx (the core imports no client): the
    # two agree here, on every rule but IDNA's on characters, which needs its tables.
    try:
        HttpAction.model_validate({"url": url})
    except ValueError:
        definition_refuses = True
    else:
        definition_refuses = False
    try:
        httpx.URL(url).host  # noqa: B018 - what the client parses and decodes when it sends
    except (httpx.InvalidURL, UnicodeError):
        client_refuses = True
    else:
        client_refuses = False
    assert definition_refuses == client_refuses


def test_a_request_the_client_cannot_frame_fails_in_one_line(server: str) -> None:
    # A definition cannot set a wrong Content-Length (the model refuses it); h11's refusal of
    # one that disagrees with the body, half-way through sending, is an outcome all the same.
    outcome = run(
        {"url": f"{server}/hook", "method": "POST", "body": "hello world"},
        extra_headers={"Content-Length": "5"},
    )
    assert (outcome.status, outcome.reason, outcome.message) == (
        RunStatus.FAILED,
        "RequestFailed",
        f"POST {server}/***: the request cannot be sent: Too much data for declared Content-Length",
    )


def test_stop_ends_a_request_in_flight(server: str) -> None:
    async def main() -> Outcome:
        attempt = HttpRun(HttpAction.model_validate({"url": f"{server}/hang"}), env={})
        task = asyncio.create_task(attempt.run())
        await asyncio.sleep(0.1)  # let the request reach the server
        attempt.stop("Replaced")
        return await task

    outcome = asyncio.run(main())
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "Replaced")


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
