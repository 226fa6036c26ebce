"""A header value with a space or tab at an end, which HTTP does not allow (RFC 9110 5.5) and
the client refuses at every run with a message that names no header: a literal one is a
definition error naming the header; one read from the environment is sent without them, as one
read from a file is. Against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

import pydantic
import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner.http import HttpRun
from tests.helpers import serve_http

# The Authorization header of each request as the server received it.
SEEN: list[str | None] = []


class Echo(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        SEEN.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_http(Echo) as url:
        yield url


def action(server: str, header: Mapping[str, object]) -> HttpAction:
    return HttpAction.model_validate({"url": f"{server}/", "headers": [header]})


@pytest.mark.parametrize("value", ["Bearer abc ", "\tBearer abc", " Bearer abc\t\n"])
def test_an_environment_value_is_sent_without_spaces_at_its_ends(server: str, value: str) -> None:
    header = {"name": "Authorization", "valueFrom": {"env": "TOK"}}
    outcome = asyncio.run(HttpRun(action(server, header), env={"TOK": value}).run())
    assert (outcome.status, outcome.message) == (RunStatus.SUCCEEDED, "HTTP 200 OK")
    assert SEEN[-1] == "Bearer abc"


@pytest.mark.parametrize("value", ["ops ", " ops", "ops\t", " "])
def test_a_literal_value_with_a_space_at_an_end_is_refused_naming_the_header(
    server: str, value: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        action(server, {"name": "X-Team", "value": value})
    (error,) = caught.value.errors()
    assert error["loc"] == ("headers", 0, "value")
    assert error["msg"] == (
        "Value error, header 'X-Team': its value may not start or end with a space or tab"
    )


def test_spaces_inside_a_value_are_sent(server: str) -> None:
    header = {"name": "Authorization", "value": "Bearer  a\tb"}
    outcome = asyncio.run(HttpRun(action(server, header), env={}).run())
    assert outcome.status == RunStatus.SUCCEEDED
    assert SEEN[-1] == "Bearer  a\tb"


def test_an_environment_value_that_cannot_be_sent_names_the_header_not_the_value(
    server: str,
) -> None:
    header = {"name": "Authorization", "valueFrom": {"env": "TOK"}}
    run = HttpRun(action(server, header), env={"TOK": "Bearer s3cret\x7f"})
    outcome = asyncio.run(run.run())
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "InvalidHeader")
    assert outcome.message.startswith("header 'Authorization': ")
    assert "s3cret" not in outcome.message
