"""The bodies of the routes anyone may send one to (the git webhook, ``POST /login``) and of the
authenticated ones, against real uvicorn over real sockets:

- a client that goes away before its body is whole is one quiet line (status 499, no answer
  sent, no traceback): 200 such connections wrote 689 KB of ``request failed`` tracebacks;
- the webhook takes a push as large as GitHub sends (a 2 048-commit push is 1.1 MB), its HMAC
  computed as it streams in;
- a delivery with no well-formed signature and no bearer token is refused before its body is
  read, and the webhook has places of its own: strangers trickling bodies to it, or to
  ``/login``, delayed a signed delivery past GitHub's 10 s;
- ``POST /api/v1/hooks/git/`` is served, not redirected (senders do not follow a 307).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from reconciler import web
from reconciler.api.admission import BODY_SECONDS, MAX_PUBLIC_BODIES
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.api.door import MAX_HOOK_BODY_BYTES
from reconciler.controller.view import SourceStatus
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, write_auth
from tests.api.fakes import FakeRuntime
from tests.helpers import wait_for

SECRET = b"webhook-secret"
HOOK = "/api/v1/hooks/git"
OPERATOR = f"Bearer {STATIC_TOKENS[Role.OPERATOR]}"
ADMIN = f"Bearer {STATIC_TOKENS[Role.ADMIN]}"
STRANGERS = 12  # as many tricklers as the reviewer ran (slow.py)


class Served:
    def __init__(self, port: int, runtime: FakeRuntime) -> None:
        self.port = port
        self.runtime = runtime

    def connect(self, timeout: float = 30.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def post(
        self, path: str, body: bytes, headers: dict[str, str], timeout: float = 60.0
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()


@contextmanager
def serving(tmp_path: Path) -> Iterator[tuple[int, FakeRuntime, Any]]:
    """The API app with a git source and the webhook's secret, served by a real uvicorn on a
    free loopback port: its port, its runtime and the app."""
    runtime = FakeRuntime([])
    runtime.source_list.append(SourceStatus("git", "https://example.test/x.git#main", 0, 0))
    auth = AuthConfig.load(write_auth(tmp_path))
    app = create_app(runtime, auth=auth, metrics=Metrics(), webhook_secret=SECRET)
    web.install(app)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for("uvicorn to start", lambda: server.started or None)
        yield server.servers[0].sockets[0].getsockname()[1], runtime, app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as (port, runtime, _):
        yield Served(port, runtime)


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def push(commits: int) -> bytes:
    """A push event shaped as GitHub documents it (the reviewer's ghpush.py)."""

    def commit(i: int) -> dict[str, object]:
        sha = f"{i:040x}"
        return {
            "id": sha,
            "tree_id": sha,
            "distinct": True,
            "message": f"ops: tune task {i} schedule",
            "timestamp": "2026-12-06T09:00:00Z",
            "url": f"https://github.com/acme/ops-tasks/commit/{sha}",
            "author": {"name": "Dev One", "email": "dev1@example.com", "username": "dev1"},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web"},
            "added": [],
            "removed": [],
            "modified": [f"crontasks/team-a/task-{i:04d}.yaml"],
        }

    event = {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": f"{commits:040x}",
        "commits": [commit(i) for i in range(commits)],
        "head_commit": commit(commits - 1),
        "repository": {"full_name": "acme/ops-tasks"},
        "pusher": {"name": "dev1"},
    }
    return json.dumps(event).encode()


def head(path: str, port: int, length: int, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {length}"]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


FAKE_SIGNATURE = "X-Hub-Signature-256: sha256=" + "0" * 64  # well-formed, wrong


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        (HOOK, (FAKE_SIGNATURE,)),
        ("/login", ("Content-Type: application/x-www-form-urlencoded",)),
        ("/api/v1/plan", (f"Authorization: {OPERATOR}", "Content-Type: application/yaml")),
        (
            "/api/v1/tasks",
            (f"Authorization: {ADMIN}", "Content-Type: application/json"),
        ),
    ],
)
def test_a_client_gone_mid_body_is_one_quiet_line(
    served: Served, caplog: pytest.LogCaptureFixture, path: str, extra: tuple[str, ...]
) -> None:
    caplog.set_level(logging.DEBUG, logger="crontask.api")
    for _ in range(5):  # the reviewer's disc.py: 100 bytes promised, 2 sent, then gone
        with served.connect() as sock:
            sock.sendall(head(path, served.port, 100, *extra) + b"ab")

    def lines() -> list[logging.LogRecord] | None:
        done = [
            r
            for r in caplog.records
            if r.getMessage() == "request" and r.fields["path"] == path  # type: ignore[attr-defined]
        ]
        return done if len(done) == 5 else None

    done = wait_for(f"5 request lines for {path}", lines)
    assert {r.fields["status"] for r in done} == {499}, [r.fields for r in done]  # type: ignore[attr-defined]
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [(r.getMessage(), r.exc_info) for r in loud]


def test_a_push_as_large_as_github_sends_is_accepted(served: Served) -> None:
    body = push(2048)
    assert len(body) > 1 << 20  # over the 1 MiB of every other route
    assert served.post(HOOK, body, signed(body))[0] == 202
    assert served.runtime.syncs == ["git"]
    # Signed with another key, or changed after signing: refused all the same.
    assert served.post(HOOK, body + b" ", signed(body))[0] == 401
    # Past GitHub's cap it is refused from its declared length, before any of it is read.
    with served.connect() as sock:
        sock.sendall(head(HOOK, served.port, MAX_HOOK_BODY_BYTES + 1, FAKE_SIGNATURE))
        assert sock.recv(4096).startswith(b"HTTP/1.1 413 ")
    # Other routes keep their 1 MiB.
    status, _ = served.post(
        "/api/v1/plan", body, {"Authorization": OPERATOR, "Content-Type": "application/yaml"}
    )
    assert status == 413


@pytest.mark.parametrize(
    "extra",
    [(), ("X-Hub-Signature-256: sha256=00",), ("X-Hub-Signature-256: sha1=" + "0" * 40,)],
)
def test_a_delivery_without_a_credential_is_refused_before_its_body(
    served: Served, extra: tuple[str, ...]
) -> None:
    started = time.monotonic()
    with served.connect(timeout=BODY_SECONDS * 3) as sock:
        sock.sendall(head(HOOK, served.port, 100_000, *extra))  # and no body at all
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401 "), answer
    assert time.monotonic() - started < BODY_SECONDS / 2
    assert served.runtime.syncs == []


def trickle(served: Served, path: str, extra: str, stop: threading.Event) -> None:
    """The reviewer's slow.py: a body promised, then a byte a second until ``stop``."""
    try:
        with served.connect(timeout=60) as sock:
            sock.sendall(head(path, served.port, 100_000, extra))
            while not stop.wait(1.0):
                sock.sendall(b"a")
    except OSError:
        pass  # answered (401, 408) and closed: what it was there to test


def test_a_signed_delivery_is_not_kept_waiting_by_strangers(served: Served) -> None:
    assert MAX_PUBLIC_BODIES < STRANGERS
    stop = threading.Event()
    strangers = [
        (HOOK, "X-Hub-Signature-256: sha256=00"),  # refused before its body
        ("/login", "Content-Type: application/x-www-form-urlencoded"),  # /login's places
    ]
    threads = [
        threading.Thread(target=trickle, args=(served, path, extra, stop), daemon=True)
        for path, extra in strangers
        for _ in range(STRANGERS)
    ]
    for thread in threads:
        thread.start()
    try:
        body = b'{"ref":"refs/heads/main"}'
        # Three deliveries in a row, each while the strangers hold what they can.
        for _ in range(3):
            started = time.monotonic()
            status, _ = served.post(HOOK, body, signed(body))
            waited = time.monotonic() - started
            assert (status, waited < BODY_SECONDS / 2) == (202, True), waited
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=BODY_SECONDS * 3)


def test_the_webhook_with_a_trailing_slash_is_served_not_redirected(served: Served) -> None:
    body = b'{"ref":"refs/heads/main"}'
    assert served.post(HOOK + "/", body, signed(body))[0] == 202
    assert served.runtime.syncs == ["git"]
    assert served.post(HOOK + "/", body, {"Content-Type": "application/json"})[0] == 401
    # Every other path keeps the house rule: a 307 to the path without the slash.
    status, _ = served.post("/api/v1/plan/", b"", {"Authorization": OPERATOR})
    assert status == 307


def test_a_bearer_token_still_authenticates_the_webhook(served: Served) -> None:
    body = push(2048)  # not read at all: the token says who calls
    viewer = f"Bearer {STATIC_TOKENS[Role.VIEWER]}"
    assert served.post(HOOK, body, {"Authorization": OPERATOR})[0] == 202
    # A token with a header that cannot be a signature: the token decides.
    stray = {"Authorization": OPERATOR, "X-Hub-Signature-256": "sha256=00"}
    assert served.post(HOOK, body, stray)[0] == 202
    assert served.post(HOOK, body, {"Authorization": viewer})[0] == 403
    assert served.runtime.syncs == ["git", "git"]
