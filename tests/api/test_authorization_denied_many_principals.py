"""Many principals without the role a route needs (JWT subjects: any name the issuer signs)
are refused with a 403 each, and logged ``authorization denied`` once a minute per client and
kind (role held, role needed), the principal a field of the line, not of the kind. With the
principal in the kind, 300 subjects cycling from one client within a minute were 900 lines (a
line a request past AUTH_FAILURE_KINDS), and each new one pushed out another client's kind
still within its minute: that client's 401s were a line each too. The guard's own
``authorize``, real JWTs; the minute is the log's clock, turned by the test."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from reconciler.api.auth import AuthConfig, Role
from reconciler.api.problems import ProblemError
from reconciler.api.routing import (
    AUTH_FAILURE_KINDS,
    AUTH_FAILURES_EVERY,
    OTHER_CLIENTS,
    ApiContext,
    authorize,
)
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.refusals import RefusalLog
from tests.api.conftest import BAD_TOKEN, make_jwt, write_auth
from tests.api.fakes import FakeRuntime
from tests.api.test_auth_failures_logged_once import Clock

ROUNDS = 3  # each within the minute
INTRUDER = "192.0.2.7"  # a client with a bad token, among the refused principals


@dataclasses.dataclass
class Guard:
    app: Starlette
    clock: Clock
    failures: RefusalLog

    def ask(self, client: str, token: str) -> int:
        """The status ``authorize`` refuses a request of ``client`` with, for a viewer's route."""
        scope = {
            "type": "http",
            "app": self.app,
            "client": (client, 4242),
            "path": "/api/v1/tasks",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
        }
        try:
            authorize(Request(scope), Role.VIEWER)
        except ProblemError as refused:
            return refused.status
        raise AssertionError(f"{client} was let through")


@pytest.fixture
def guard(tmp_path: Path) -> Guard:
    clock = Clock()
    failures = RefusalLog(AUTH_FAILURES_EVERY, clock=clock, keep=AUTH_FAILURE_KINDS)
    auth = AuthConfig.load(write_auth(tmp_path))
    app = Starlette()
    app.state.crontask = ApiContext(
        FakeRuntime([]), auth=auth, metrics=Metrics(), auth_failures=failures
    )
    return Guard(app, clock, failures)


def roleless(count: int) -> list[str]:
    """JWTs of ``count`` subjects, each valid and with no crontask role."""
    return [make_jwt(None, sub=f"user-{i}") for i in range(count)]


def lines(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, object]]:
    return [r.fields for r in caplog.records if r.getMessage() == message]  # type: ignore[attr-defined]


@pytest.mark.parametrize("principals", [300, 1000])
def test_one_client_cycling_principals_is_one_line_a_minute(
    guard: Guard, caplog: pytest.LogCaptureFixture, principals: int
) -> None:
    tokens = roleless(principals)
    with caplog.at_level(logging.WARNING, logger="crontask.api"):
        for _ in range(ROUNDS):
            assert {guard.ask("10.0.0.1", token) for token in tokens} == {403}
            assert guard.ask(INTRUDER, BAD_TOKEN) == 401
            guard.clock.now += 1.0
        assert len(guard.failures) == 2  # one kind each: remembered, whatever the names
        said = lines(caplog, "authorization denied")
        assert said == [
            {
                "reason": "no crontask role; this needs viewer or above",
                "client": "10.0.0.1",
                "principal": "user-0",  # the first of the minute
                "role": None,
                "required": Role.VIEWER,
                "path": "/api/v1/tasks",
                "suppressed": 0,
            }
        ]
        assert [f["client"] for f in lines(caplog, "authentication failed")] == [INTRUDER]

        guard.clock.now += AUTH_FAILURES_EVERY  # a minute on: one line, counting the others
        assert guard.ask("10.0.0.1", tokens[7]) == 403
    last = lines(caplog, "authorization denied")[-1]
    assert (last["principal"], last["suppressed"]) == ("user-7", ROUNDS * principals - 1)


@pytest.mark.parametrize("principals", [300, 1000])
def test_past_the_clients_remembered_the_others_stay_one_line(
    guard: Guard, caplog: pytest.LogCaptureFixture, principals: int
) -> None:
    """A principal a client, past AUTH_FAILURE_KINDS: the first clients a line each, the rest
    one line together (``other clients``), in the first round; in the next rounds within the
    minute, only the intruder's 401 again (its kind was the one logged longest ago, forgotten
    to make room for the others' line), as one of the others: never a line a request."""
    tokens = roleless(principals)
    clients = [f"10.0.{i // 256}.{i % 256}" for i in range(principals)]
    per_round: list[int] = []
    with caplog.at_level(logging.WARNING, logger="crontask.api"):
        for _ in range(ROUNDS):
            before = len(caplog.records)
            assert guard.ask(INTRUDER, BAD_TOKEN) == 401
            assert {guard.ask(c, t) for c, t in zip(clients, tokens, strict=True)} == {403}
            per_round.append(len(caplog.records) - before)
            guard.clock.now += 1.0
    assert per_round == [AUTH_FAILURE_KINDS + 1, 1, 0]
    assert len(guard.failures) <= AUTH_FAILURE_KINDS
    denied = lines(caplog, "authorization denied")
    assert [f["client"] for f in denied[-2:]] == [clients[AUTH_FAILURE_KINDS - 2], OTHER_CLIENTS]
    assert [f["client"] for f in lines(caplog, "authentication failed")] == [
        INTRUDER,
        OTHER_CLIENTS,
    ]
