"""What an http run stores of a response hides what the task's readers below ``admin`` may
not see (README, *The HTTP action*): a receiver that echoes the request (an Express-style
``404 Cannot POST /path``, httpbin's ``/anything``, a proxy's error page) sends back the URL's
path, query and userinfo and the ``valueFrom`` header values; the run's output and message
show ``***`` in place of the whole path, the userinfo, a query value named as a secret
(``token``) and the header values (which parts are hidden alone: test_http_secret_forms).
A ``3xx`` is not followed, and its message says where it pointed, without those parts.
Real HTTP servers, real runs through the dispatcher."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.store import MemoryRunStore
from tests.helpers import definition, local_actions, serve_http

SLOT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FILE_TOKEN = "Bearer fileTOKEN0123"  # noqa: S105 (a test's)
SECRETS = ("SECRETPATH", "SECRETQUERY", "fileTOKEN0123", "USERsecret", "PASSsecret", "B0000")


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received: a 404 whose reason phrase and body quote
    its path, the body its request line and headers too; ``/moved/...``: a 302 to a page that
    names that path in its query."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/moved/"):
            self.send_response(302, "Found")
            self.send_header("Location", f"/login?next={self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"Cannot POST {self.path}\n{self.requestline}\n{self.headers}".encode()
        self.send_response(404, f"Cannot POST {self.path}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    with serve_http(Echo) as url:
        yield url


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(FILE_TOKEN)
    os.chmod(path, 0o600)
    return path


def run(url: str, token_file: Path) -> RunRecord:
    """One real run of a task POSTing to ``url`` with an ``X-Api-Key`` header from
    ``token_file``: its record, as the store keeps it."""
    store = MemoryRunStore()
    d = Dispatcher(store, owner="h:1:a", clock=lambda: SLOT, actions=local_actions())
    http = {
        "method": "POST",
        "url": url,
        "headers": [{"name": "X-Api-Key", "valueFrom": {"file": str(token_file)}}],
        "timeoutSeconds": 10,
    }
    hook = definition("hook", http=http, command=None)

    async def scenario() -> None:
        d.fire(hook, SLOT)
        assert await d.drain(20)

    asyncio.run(scenario())
    record = store.get(run_id("default/hook", SLOT))
    assert record is not None
    return record


def _leaked(text: str | None) -> list[str]:
    return [s for s in SECRETS if s in (text or "")]


def test_an_echoed_request_is_stored_without_its_secrets(server: str, token_file: Path) -> None:
    port = server.rsplit(":", 1)[1]
    url = f"http://USERsecret:PASSsecret@127.0.0.1:{port}/services/T0000/B0000/SECRETPATH"
    record = run(f"{url}?token=SECRETQUERY&flag", token_file)
    assert (record.status, record.exit_code) == (RunStatus.FAILED, 404)
    assert record.output is not None
    assert record.message is not None
    assert _leaked(record.output) == [], record.output
    assert _leaked(record.message) == [], record.message
    # httpx sends the userinfo as Basic credentials: the echo holds them encoded.
    basic = base64.b64encode(b"USERsecret:PASSsecret").decode()
    assert basic not in record.output
    assert "Cannot POST ***" in record.output, record.output
    assert "X-Api-Key: ***" in record.output, record.output
    assert "Authorization: Basic ***" in record.output, record.output
    # What is no secret stays: the host, the method, the names of the query's parameters.
    assert f"Host: 127.0.0.1:{port}" in record.output
    assert "?token=***" in record.output
    assert record.message.startswith("HTTP 404 Cannot POST ***"), record.message


def test_a_redirect_is_not_followed_and_says_where_it_pointed_without_secrets(
    server: str, token_file: Path
) -> None:
    port = server.rsplit(":", 1)[1]
    record = run(f"{server}/moved/SECRETPATH?token=SECRETQUERY", token_file)
    assert (record.status, record.exit_code) == (RunStatus.FAILED, 302)
    assert record.message is not None
    assert _leaked(record.message) == [], record.message
    assert f"Location: http://127.0.0.1:{port}/***?next=***" in record.message, record.message
    assert "not followed" in record.message
