"""The HTTP action against a real server that misbehaves after the head or sends binary, and
what a real server receives of the run's own headers."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun, HttpRunner
from tests.helpers import definition, serve_http

KEPT = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 (the default): the connection closes when the handler returns.
    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        if self.path == "/cut":
            # A head that promises 1000 bytes, 7 of them, then the connection closes.
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        elif self.path in ("/ff", "/nul"):
            body = (b"\xff" if self.path == "/ff" else b"\x00") * KEPT
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path in ("/gzip", "/identity"):
            # Compressed though the request asked for none (Accept-Encoding: identity).
            encoding = "gzip" if self.path == "/gzip" else "identity"
            body = gzip.compress(b"report done\n") if encoding == "gzip" else b"report done\n"
            self.send_response(200)
            self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/headers":
            # Every header line as received: a dict would hide a duplicate.
            body = json.dumps(list(self.headers.items())).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_http(Handler) as url:
        yield url


def run(url: str) -> Outcome:
    action = HttpAction.model_validate({"url": url, "timeoutSeconds": 10})
    return asyncio.run(HttpRun(action, env={}).run())


def test_a_body_cut_short_keeps_the_status_and_what_came(server: str) -> None:
    outcome = run(f"{server}/cut")
    assert (outcome.status, outcome.exit_code, outcome.reason) == (
        RunStatus.FAILED,
        200,
        "RequestFailed",
    )
    port = server.rsplit(":", 1)[1]
    assert outcome.message == (
        f"GET http://127.0.0.1:{port}/***: HTTP 200 OK; response body cut short: peer closed "
        "connection without sending complete message body (received 7 bytes, expected 1000); "
        "not retried: the server took the request (HTTP 200)"
    )
    assert outcome.output == "partial"


@pytest.mark.parametrize("path", ["/ff", "/nul"])
def test_a_binary_body_is_kept_within_the_limit_once_decoded(server: str, path: str) -> None:
    # 64 KiB read; each byte is stored as U+FFFD, three bytes of UTF-8: a third of them fits.
    outcome = run(f"{server}{path}")
    assert outcome.status is RunStatus.SUCCEEDED
    assert (
        outcome.output == "\ufffd" * (KEPT // 3) + f"\n[... {KEPT - KEPT // 3} bytes truncated ...]"
    )


def test_a_task_cannot_send_crontask_run_headers_of_its_own(server: str) -> None:
    spoofed = ("x-crontask-run-id", "X-CRONTASK-ATTEMPT", "x-Crontask-Scheduled-Time")
    task = definition(
        command=None,
        http={
            "url": f"{server}/headers",
            "headers": [{"name": name, "value": "spoofed"} for name in spoofed]
            + [{"name": "X-Other", "value": "kept"}],
        },
    )
    scheduled = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    record = RunRecord("run-1", task.key, scheduled, Trigger.SCHEDULE, RunStatus.RUNNING, attempt=2)
    outcome = asyncio.run(HttpRunner({}).attempt(task, record).run())
    assert outcome.status is RunStatus.SUCCEEDED
    received = [(name.lower(), value) for name, value in json.loads(outcome.output)]
    ours = [(name, value) for name, value in received if name.startswith("x-crontask-")]
    assert sorted(ours) == [
        ("x-crontask-attempt", "2"),
        ("x-crontask-run-id", "run-1"),
        ("x-crontask-scheduled-time", scheduled.isoformat()),
    ]
    assert ("x-other", "kept") in received


def test_a_body_encoded_though_none_was_asked_for_is_said_not_kept(server: str) -> None:
    """Its bytes were kept as the output: compressed garbage, U+FFFD for most of it."""
    outcome = run(f"{server}/gzip")
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == "[body not kept: sent encoded (gzip), though crontask asked for none]"
    assert run(f"{server}/identity").output == "report done\n"
    # Asked for by the task: not decoded either (crontask keeps the body as it came).
    action = HttpAction.model_validate(
        {
            "url": f"{server}/gzip",
            "timeoutSeconds": 10,
            "headers": [{"name": "Accept-Encoding", "value": "gzip"}],
        }
    )
    asked = asyncio.run(HttpRun(action, env={}).run())
    assert asked.output == "[body not kept: sent encoded (gzip), crontask keeps none]"
