"""A header named twice in ``spec.http.headers`` is sent twice, as HTTP allows and as a
Kubernetes probe's ``httpHeaders`` sends it: the first one is not dropped for the second."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner.http import HttpRun
from tests.helpers import serve_http


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        # Every header line as received (a dict would fold two of one name), and the header
        # values echoed in the status line's reason, as a receiver's error page may quote them.
        received = list(self.headers.items())
        body = json.dumps(received).encode()
        self.send_response(200, " ".join(v for k, v in received if k.lower() == "x-key"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_http(Handler) as url:
        yield url


def sent(server: str, headers: list[dict[str, Any]], **env: str) -> tuple[list[list[str]], str]:
    action = HttpAction.model_validate({"url": f"{server}/x", "headers": headers})
    outcome = asyncio.run(HttpRun(action, env=env, extra_headers={"X-Crontask-Attempt": "1"}).run())
    assert outcome.status is RunStatus.SUCCEEDED, outcome.message
    return [[k.lower(), v] for k, v in json.loads(outcome.output or "")], outcome.message or ""


def test_every_header_given_is_sent_in_its_order(server: str) -> None:
    got, _ = sent(
        server,
        [
            {"name": "Accept", "value": "text/html"},
            {"name": "X-A", "value": "1"},
            {"name": "Accept", "value": "application/json"},
            {"name": "x-a", "value": "2"},
        ],
    )
    assert [p for p in got if p[0] in ("accept", "x-a")] == [
        ["accept", "text/html"],
        ["x-a", "1"],
        ["accept", "application/json"],
        ["x-a", "2"],
    ]


def test_a_crontask_header_still_replaces_the_task_s_in_any_case(server: str) -> None:
    got, _ = sent(
        server,
        [
            {"name": "X-Crontask-Attempt", "value": "7"},
            {"name": "x-crontask-attempt", "value": "8"},
        ],
    )
    assert [p for p in got if p[0] == "x-crontask-attempt"] == [["x-crontask-attempt", "1"]]


def test_both_values_from_of_one_name_are_hidden(server: str) -> None:
    first, second = "Zq8Wm3Rt6Yp1Lk4N", "Hb2Jc5Df8Gk1Lm4P"
    got, message = sent(
        server,
        [
            {"name": "X-Key", "valueFrom": {"env": "ONE"}},
            {"name": "X-Key", "valueFrom": {"env": "TWO"}},
        ],
        ONE=first,
        TWO=second,
    )
    # Both sent, and both hidden wherever the receiver quotes them: its body and its reason.
    assert [p for p in got if p[0] == "x-key"] == [["x-key", "***"], ["x-key", "***"]]
    assert message == "HTTP 200 *** ***"
