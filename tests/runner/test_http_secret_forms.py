"""Which parts of a request an http run hides in what it keeps of the response, and which it
leaves (README, *The HTTP action*): the whole path, the userinfo and the ``valueFrom`` values
always; a path segment or a query value only when it looks like a credential (long, letters
and digits mixed, or a query value whose name says so), and only as a whole word. An ordinary
answer comes back byte for byte. Real HTTP servers, real attempts (``HttpRun``)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from reconciler.core.actions import HttpAction
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from tests.helpers import serve_http

TASKS = json.dumps(
    {
        "tasks": [
            {"name": f"nightly-{i}", "enabled": True, "status": "active", "limit": 1000}
            for i in range(5)
        ],
        "repository": {"full_name": "acme/tasks", "mode": "full"},
        "count": 5,
        "next": None,
    },
    indent=1,
)
SLACK = "XoXb0a1B2c3D4e5F6g7H8i9J"  # 24 characters: a webhook's secret segment
LIMIT = 64 * 1024
HALF_SENT = threading.Event()
RELEASE = threading.Event()


class Answers(BaseHTTPRequestHandler):
    """``/api/...``: a JSON answer that names none of the request; ``/cut/<secret>``: a body
    whose 64 KiB head ends inside the secret; ``/half/<secret>``: the body's first bytes end
    inside the secret, the rest is held until ``RELEASE``; anything else: a 404 that echoes
    the request line and headers."""

    def do_GET(self) -> None:
        path = self.path
        if path.startswith("/api/"):
            self._answer(200, TASKS.encode())
        elif path.startswith("/cut/"):
            secret = path.rpartition("/")[2]
            self._answer(200, b"x" * (LIMIT - 10) + f" {secret} more".encode())
        elif path.startswith("/half/"):
            secret = path.rpartition("/")[2]
            head = f"echo {secret[:12]}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(head) + 1000))
            self.end_headers()
            self.wfile.write(head)
            self.wfile.flush()
            HALF_SENT.set()
            RELEASE.wait(10)
        else:
            body = f"Cannot GET {path}\n{self.headers}".encode()
            self._answer(404, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    RELEASE.clear()
    HALF_SENT.clear()
    with serve_http(Answers) as url:
        try:
            yield url
        finally:
            RELEASE.set()


def attempt(url: str, headers: list[dict[str, object]] | None = None, **env: str) -> Outcome:
    action = HttpAction.model_validate(
        {"method": "GET", "url": url, "headers": headers or [], "expectStatus": "200,404"}
    )
    return asyncio.run(HttpRun(action, env=env).run())


def test_an_ordinary_answer_is_kept_byte_for_byte(server: str) -> None:
    outcome = attempt(f"{server}/api/v1/tasks?status=active&enabled=true&limit=1000&mode=full")
    assert outcome.output == TASKS
    json.loads(outcome.output)


def test_a_webhook_secret_in_the_path_is_hidden(server: str) -> None:
    outcome = attempt(f"{server}/services/T000/B000/{SLACK}")
    assert outcome.output is not None
    assert SLACK not in outcome.output
    assert "Cannot GET ***" in outcome.output, outcome.output
    # Quoted alone (a receiver naming the segment): hidden as a credential-like segment.
    assert SLACK not in (outcome.message or "")


def test_a_query_value_is_hidden_for_its_name_or_its_looks_and_only_as_a_whole_word(
    server: str,
) -> None:
    outcome = attempt(f"{server}/x?token=abcd1234&page=2&q=ordinary&id=Kq7Lm2Pw9Zt")
    assert outcome.output is not None
    assert "abcd1234" not in outcome.output
    assert "Kq7Lm2Pw9Zt" not in outcome.output
    assert "page=2&q=ordinary" in outcome.output, outcome.output
    assert "?token=***&" in outcome.output, outcome.output


def test_a_credential_inside_a_longer_word_is_not_that_credential() -> None:
    from reconciler.runner.http_secrets import Secrets, url_secrets

    secrets = Secrets(*url_secrets("https://h.example/a/b?id=Kq7Lm2Pw9Zt"))
    assert secrets.hide("id Kq7Lm2Pw9Zt, xKq7Lm2Pw9Zt") == "id ***, xKq7Lm2Pw9Zt"
    # The whole path is hidden wherever it appears.
    assert secrets.hide("GET /a/b?id=1 and x/a/bc") == "GET ***?id=1 and x***c"


def test_query_values_are_hidden_as_a_receiver_decodes_them() -> None:
    from reconciler.runner.http_secrets import Secrets, url_secrets

    secrets = Secrets(*url_secrets("https://h.example/x?sig=ab%2Fcd+ef%3D1234"))
    for form in ("ab/cd ef=1234", "ab/cd+ef=1234", "ab%2Fcd+ef%3D1234", "ab%2fcd+ef%3d1234"):
        assert secrets.hide(f"[{form}]") == "[***]", form


def test_a_value_from_is_hidden_percent_encoded_and_basic_decoded(server: str) -> None:
    password = "pa ss/w0rd!x"  # noqa: S105 (a test's)
    basic = base64.b64encode(f"robot:{password}".encode()).decode()
    headers: list[dict[str, object]] = [
        {"name": "Authorization", "valueFrom": {"env": "AUTH"}},
        {"name": "X-Key", "valueFrom": {"env": "KEY"}},
    ]
    key = "k/y+v@lue 99"
    query = urllib.parse.quote(key, safe="")
    outcome = attempt(f"{server}/x?echo={query}", headers, AUTH=f"Basic {basic}", KEY=key)
    text = outcome.output or ""
    for leaked in (basic, f"robot:{password}", password, key, query):
        assert leaked not in text, (leaked, text)
    # Also as written by a receiver that decodes and quotes it itself.
    from reconciler.runner.http_secrets import Secrets, header_secrets

    action = HttpAction.model_validate({"url": "https://h.example/", "headers": headers})
    secrets = Secrets(()).with_values(
        header_secrets(action, [("Authorization", f"Basic {basic}"), ("X-Key", key)])
    )
    said = f"user robot:{password} password {password} key {query} {query.lower()}"
    assert secrets.hide(said) == "user *** password *** key *** ***", secrets.hide(said)


def test_a_head_cut_inside_a_secret_does_not_keep_its_start(server: str) -> None:
    secret = "Zq8Wm3Rt6Yp1Lk4Nv7Bx"  # noqa: S105 (a test's)
    outcome = attempt(f"{server}/cut/{secret}")
    assert outcome.output is not None
    assert secret[:6] not in outcome.output, outcome.output[-80:]
    assert "x ***\n" in outcome.output, outcome.output[-80:]


def test_a_run_stopped_inside_a_secret_does_not_keep_its_start(server: str) -> None:
    secret = "Zq8Wm3Rt6Yp1Lk4Nv7Bx"  # noqa: S105 (a test's)

    async def main() -> Outcome:
        action = HttpAction.model_validate({"url": f"{server}/half/{secret}"})
        run = HttpRun(action, env={})
        task = asyncio.create_task(run.run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        # The run's head of the body is what it will keep: wait until the 12 bytes came.
        while len(run._body) < 17 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        run.stop("Replaced")
        return await task

    outcome = asyncio.run(main())
    assert HALF_SENT.is_set()
    assert outcome.reason == "Replaced"
    assert outcome.output is not None
    assert secret[:6] not in outcome.output, outcome.output
    assert outcome.output.startswith("echo ***"), outcome.output


def test_query_items_split_by_semicolons_are_values_too() -> None:
    from reconciler.runner.http_secrets import Secrets, url_secrets

    secrets = Secrets(*url_secrets("https://h.example/x?a=1;token=Tk9xLm2Qw7Zx"))
    assert secrets.hide('{"a": "1", "token": "Tk9xLm2Qw7Zx"}') == '{"a": "1", "token": "***"}'


def test_parts_beyond_the_cap_are_left_shortest_first() -> None:
    from reconciler.runner.http_secrets import MAX_FORMS, Secrets

    words = [f"Word{i:04d}x{'y' * (i % 7)}" for i in range(MAX_FORMS + 50)]
    secrets = Secrets(["the-whole-path-0001"], words)
    kept = {part for part, _ in secrets._parts}
    assert len(kept) == MAX_FORMS
    assert "the-whole-path-0001" in kept  # hidden wherever it appears: kept first
    longest = sorted(words, key=len, reverse=True)[: MAX_FORMS - 1]
    assert min(map(len, longest)) <= min(len(p) for p in kept if p in words)


@pytest.mark.parametrize(
    "url",
    [
        "https://h.example/hooks/T0A1B2C3D4E5F6G7H8",
        "https://h.example/x?token=Kq7Lm2Pw9Zt",
        "https://h.example/x?api_key=ab12cd34",
    ],
)
def test_a_url_quoted_back_percent_encoded_keeps_no_secret(url: str) -> None:
    """A login page's ``?next=%2Fhooks%2F...``: the hex digit before a part is no letter of
    a longer word."""
    from reconciler.runner.http_secrets import Secrets, url_secrets

    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    secret = (parts.query.partition("=")[2] or parts.path.rpartition("/")[2]).lower()
    secrets = Secrets(*url_secrets(url))
    for quoted in (urllib.parse.quote(target, safe=""), json.dumps(target).replace("/", "\\u002F")):
        shown = secrets.hide(f"Log in at /login?next={quoted}\n")
        assert secret not in shown.lower(), shown
        # Cut at the end inside it, too.
        cut = secrets.hide(f"next={quoted}"[:-3])
        assert secret[:-3] not in cut.lower(), cut


@pytest.mark.parametrize(
    "name", ["client_secret", "pwd", "passphrase", "authorization", "auth_code", "X-Amz-Signature"]
)
def test_a_short_value_is_hidden_for_a_name_that_holds_a_secret_word(name: str) -> None:
    from reconciler.runner.http_secrets import Secrets, url_secrets

    secrets = Secrets(*url_secrets(f"https://h.example/x?{name}=xY9kq2Lm"))
    assert secrets.hide('{"v":"xY9kq2Lm"}') == '{"v":"***"}'
