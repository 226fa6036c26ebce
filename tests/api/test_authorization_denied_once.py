"""A valid credential without the role a route needs is logged as an authentication that
failed is (``test_auth_failures_logged_once``): the first time for its kind (the role it has
and the one needed, the client), then once a minute at most, with how many were not logged
since; the principal is named in the line, not part of the kind (see
``test_authorization_denied_many_principals``). 1 000 requests of a token without a crontask
role were 1 000 warnings. Real uvicorn, real HTTP; the minute is the app's own clock's, turned
by the test."""

from __future__ import annotations

import logging

import httpx
import pytest

from reconciler.api.auth import Role
from reconciler.api.routing import AUTH_FAILURES_EVERY
from tests.api.conftest import STATIC_TOKENS, bearer, make_jwt
from tests.api.test_auth_failures_logged_once import (  # noqa: F401 (served: the fixture)
    N,
    Served,
    said,
    served,
)

NO_ROLE = "no crontask role; this needs viewer or above"


def test_denied_requests_are_one_line_a_kind_then_a_count(
    served: Served,  # noqa: F811 (the fixture of test_auth_failures_logged_once)
    caplog: pytest.LogCaptureFixture,
) -> None:
    roleless = bearer(make_jwt(None))
    viewer = bearer(STATIC_TOKENS[Role.VIEWER])
    with caplog.at_level(logging.INFO), httpx.Client(base_url=served.url, timeout=10) as http:
        statuses = {http.get("/api/v1/tasks", headers=roleless).status_code for _ in range(N)}
        # Another principal of the same role and need is the same kind: counted, not said;
        # the answer names it all the same.
        other = http.get("/api/v1/tasks", headers=bearer(make_jwt(None, sub="alice")))
        assert other.json()["detail"] == "alice has no crontask role; this needs viewer or above"
        # Another role short of another need is another kind.
        denied = http.post("/api/v1/tasks/default/hello/runs", headers=viewer)
        assert denied.status_code == 403, denied.text
        assert denied.json()["detail"] == "viewer-bot has role viewer; this needs operator or above"
        served.clock.now += AUTH_FAILURES_EVERY  # a minute on
        assert http.get("/api/v1/runs", headers=roleless).status_code == 403
    assert statuses == {403}
    assert said(caplog, "authorization denied") == [
        {
            "reason": NO_ROLE,
            "client": "127.0.0.1",
            "principal": "user-None",
            "role": None,
            "required": Role.VIEWER,
            "path": "/api/v1/tasks",
            "suppressed": 0,
        },
        {
            "reason": "role viewer; this needs operator or above",
            "client": "127.0.0.1",
            "principal": "viewer-bot",
            "role": Role.VIEWER,
            "required": Role.OPERATOR,
            "path": "/api/v1/tasks/default/hello/runs",
            "suppressed": 0,
        },
        {
            "reason": NO_ROLE,
            "client": "127.0.0.1",
            "principal": "user-None",
            "role": None,
            "required": Role.VIEWER,
            "path": "/api/v1/runs",
            "suppressed": N,  # all but the first, which was said, and alice's
        },
    ]
