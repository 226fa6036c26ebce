"""A refused credential is logged the first time, then once a minute at most for each kind
(message, reason and client address, an IPv6 one by its /64), with how many were not logged
since (``suppressed``): a client retrying a revoked token on one keep-alive connection wrote
3 000 warnings in 4 s, one a request.
Real uvicorn, real HTTP; the minute is the app's own clock's, turned by the test."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request

from reconciler import web
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig
from reconciler.api.routing import (
    AUTH_FAILURE_KINDS,
    AUTH_FAILURES_EVERY,
    ApiContext,
    warn_auth_failed,
)
from reconciler.hostnames import peer_of
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.refusals import RefusalLog
from tests.api.conftest import BAD_TOKEN, bearer, make_jwt, write_auth
from tests.api.fakes import FakeRuntime
from tests.helpers import wait_for

N = 200
SECRET = b"webhook-secret"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Served:
    url: str
    clock: Clock


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    auth = AuthConfig.load(write_auth(tmp_path))
    app = create_app(FakeRuntime([]), auth=auth, metrics=Metrics(), webhook_secret=SECRET)
    web.install(app)
    clock = Clock()
    ctx = app.state.crontask
    assert isinstance(ctx, ApiContext)
    failures = RefusalLog(AUTH_FAILURES_EVERY, clock=clock)
    app.state.crontask = dataclasses.replace(ctx, auth_failures=failures)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("uvicorn to start", lambda: server.started or None)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Served(f"http://127.0.0.1:{port}", clock)
    server.should_exit = True
    thread.join(timeout=10)


def said(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, object]]:
    return [r.fields for r in caplog.records if r.getMessage() == message]  # type: ignore[attr-defined]


def test_bad_tokens_on_one_connection_are_one_line_then_a_count(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    expired = make_jwt("admin", expires_in=-60)
    with caplog.at_level(logging.INFO), httpx.Client(base_url=served.url, timeout=10) as http:
        statuses = {
            http.get("/api/v1/tasks", headers=bearer(BAD_TOKEN)).status_code for _ in range(N)
        }
        # Another reason is another kind: said the first time too.
        assert http.get("/api/v1/tasks", headers=bearer(expired)).status_code == 401
        assert said(caplog, "authentication failed") == [
            {
                "reason": "unknown token",
                "client": "127.0.0.1",
                "path": "/api/v1/tasks",
                "suppressed": 0,
            },
            {
                "reason": "jwt expired",
                "client": "127.0.0.1",
                "path": "/api/v1/tasks",
                "suppressed": 0,
            },
        ]
        served.clock.now += AUTH_FAILURES_EVERY  # a minute on
        assert http.get("/api/v1/runs", headers=bearer(BAD_TOKEN)).status_code == 401
        # Every request still has its own line, at info, for who wants them all (written
        # once its answer is sent: the last may come after the client has it).
        wait_for("a request line each", lambda: len(said(caplog, "request")) == N + 2)
    assert statuses == {401}
    lines = said(caplog, "authentication failed")
    assert len(lines) == 3, lines
    assert lines[2] == {
        "reason": "unknown token",
        "client": "127.0.0.1",
        "path": "/api/v1/runs",
        "suppressed": N - 1,  # all but the first, which was said
    }
    text = caplog.text
    assert BAD_TOKEN not in text
    assert expired[:12] not in text


def test_bad_page_sign_ins_are_one_line_then_a_count(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), httpx.Client(base_url=served.url, timeout=10) as http:
        for _ in range(N):
            assert http.post("/login", data={"token": BAD_TOKEN}).status_code == 401
        assert len(said(caplog, "page sign-in failed")) == 1
        served.clock.now += AUTH_FAILURES_EVERY
        assert http.post("/login", data={"token": BAD_TOKEN}).status_code == 401
    assert said(caplog, "page sign-in failed") == [
        {"reason": "unknown token", "client": "127.0.0.1", "suppressed": 0},
        {"reason": "unknown token", "client": "127.0.0.1", "suppressed": N - 1},
    ]
    assert BAD_TOKEN not in caplog.text


def test_bad_webhook_signatures_are_one_line_then_a_count(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    with caplog.at_level(logging.INFO), httpx.Client(base_url=served.url, timeout=10) as http:
        for _ in range(N):
            assert http.post("/api/v1/hooks/git", content=b"{}", headers=wrong).status_code == 401
        served.clock.now += AUTH_FAILURES_EVERY
        assert http.post("/api/v1/hooks/git", content=b"{}", headers=wrong).status_code == 401
    suppressed = [f["suppressed"] for f in said(caplog, "webhook signature rejected")]
    assert suppressed == [0, N - 1]


def test_each_client_address_has_its_own_first_line(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood from one address does not hide another's failures (an operator's own client,
    or a second attacker): each address is a kind of its own, so fail2ban or a SIEM rule
    keyed on ``client`` sees every one of them."""
    # 127.0.0.2 is on the loopback too: a second client of the same server.
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with (
        caplog.at_level(logging.INFO),
        httpx.Client(base_url=served.url, timeout=10) as flood,
        httpx.Client(base_url=served.url, timeout=10, transport=other) as mine,
    ):
        for _ in range(N):
            assert flood.get("/api/v1/tasks", headers=bearer(BAD_TOKEN)).status_code == 401
        assert mine.get("/api/v1/tasks", headers=bearer(BAD_TOKEN)).status_code == 401
        assert mine.post("/login", data={"token": BAD_TOKEN}).status_code == 401
        assert flood.post("/login", data={"token": BAD_TOKEN}).status_code == 401
    assert [f["client"] for f in said(caplog, "authentication failed")] == [
        "127.0.0.1",
        "127.0.0.2",
    ]
    assert [f["client"] for f in said(caplog, "page sign-in failed")] == [
        "127.0.0.2",
        "127.0.0.1",
    ]


def test_an_ipv6_host_is_one_client_by_its_64() -> None:
    """A host is given a /64 and may send from any address in it: counted as one client, as
    the connection guard counts it (else each request from a new address is a line)."""
    assert peer_of("2001:db8:1:2::1") == peer_of("2001:db8:1:2:ffff::9")
    assert peer_of("2001:db8:1:2::1") != peer_of("2001:db8:1:3::1")
    assert peer_of("::ffff:127.0.0.2") == "127.0.0.2"
    assert peer_of("127.0.0.1") != peer_of("127.0.0.2")


def test_the_kinds_remembered_are_bounded_the_oldest_forgotten() -> None:
    """A flood from many addresses within one minute must not grow the log's memory without
    limit: past ``keep`` kinds, the one logged longest ago is forgotten (said again if it
    comes back), however recent."""
    clock = Clock()
    failures = RefusalLog(AUTH_FAILURES_EVERY, clock=clock, keep=3)
    assert [failures.due(k) for k in "abc"] == [0, 0, 0]
    assert failures.due("a") is None  # counted, still remembered
    assert failures.due("d") == 0  # a fourth kind: "a", logged longest ago, is forgotten
    assert failures.due("b") is None
    assert failures.due("a") == 0  # forgotten: said again (its count went with it)
    assert failures.due("d") is None  # still remembered
    assert failures.due("b") == 0  # "b", now logged longest ago, made room for "a"
    assert len(failures) <= 3


def test_the_app_remembers_at_most_auth_failure_kinds() -> None:
    """The app's own log is bounded at AUTH_FAILURE_KINDS: one flood of new addresses
    within a minute forgets the first, which is said again."""
    ctx = ApiContext(FakeRuntime([]), auth=None, metrics=Metrics())
    kinds = [
        ("authentication failed", "unknown token", f"10.0.{i // 256}.{i % 256}")
        for i in range(AUTH_FAILURE_KINDS + 1)
    ]
    assert {ctx.auth_failures.due(k) for k in kinds} == {0}
    assert len(ctx.auth_failures) == AUTH_FAILURE_KINDS
    assert ctx.auth_failures.due(kinds[0]) == 0  # forgotten, said again
    assert ctx.auth_failures.due(kinds[-1]) is None


def test_past_the_clients_remembered_the_others_share_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A flood from more addresses than AUTH_FAILURE_KINDS within a minute (a /48 is 65 536
    /64s) is a line for each of the first, then one for all the others, not one a request."""
    app = Starlette()
    app.state.crontask = ApiContext(FakeRuntime([]), auth=None, metrics=Metrics())

    def failed(host: str) -> None:
        scope = {"type": "http", "client": (host, 1), "app": app, "headers": []}
        warn_auth_failed(
            Request(scope),
            logging.getLogger("crontask.api"),
            "authentication failed",
            "unknown token",
        )

    with caplog.at_level("WARNING", logger="crontask.api"):
        for i in range(3 * AUTH_FAILURE_KINDS):
            failed(f"10.0.{i // 256}.{i % 256}")
    lines = [r for r in caplog.records if r.getMessage() == "authentication failed"]
    clients = [r.fields["client"] for r in lines]  # type: ignore[attr-defined]
    assert len(lines) == AUTH_FAILURE_KINDS + 1
    assert clients[:2] == ["10.0.0.0", "10.0.0.1"]
    assert clients[-1] == "other clients"
