"""The request log: one structured line per request, naming the caller, never a credential."""

from __future__ import annotations

import logging

import pytest

from reconciler.api.auth import AuthConfig, Role
from reconciler.logs import _Formatter
from tests.api.conftest import BAD_TOKEN, STATIC_TOKENS, AppFactory, TestClient, bearer, make_jwt


def test_one_line_per_request_and_no_token_anywhere(
    make_app: AppFactory, auth_config: AuthConfig, caplog: pytest.LogCaptureFixture
) -> None:
    jwt_token = make_jwt("admin")
    expired = make_jwt("admin", expires_in=-60)
    secrets = [*STATIC_TOKENS.values(), BAD_TOKEN, jwt_token, expired]
    with (
        caplog.at_level(logging.DEBUG, logger="crontask.api"),
        TestClient(make_app(auth_config)) as client,
    ):
        client.get("/api/v1/tasks", headers=bearer(STATIC_TOKENS[Role.VIEWER]))
        client.post("/api/v1/tasks/default/hello/runs", headers=bearer(jwt_token))
        client.get("/api/v1/tasks", headers=bearer(BAD_TOKEN))
        client.get("/api/v1/tasks", headers=bearer(expired))
        client.delete("/api/v1/tasks/default/mine", headers=bearer(STATIC_TOKENS[Role.VIEWER]))
        client.get("/api/v1/runs?limit=1", headers=bearer(STATIC_TOKENS[Role.ADMIN]))

    requests = [r for r in caplog.records if r.getMessage() == "request"]
    lines = [
        (f["method"], f["path"], f["status"], f["principal"])
        for f in (r.fields for r in requests)  # type: ignore[attr-defined]
    ]
    assert lines == [
        ("GET", "/api/v1/tasks", 200, "viewer-bot"),
        ("POST", "/api/v1/tasks/default/hello/runs", 202, "user-admin"),
        ("GET", "/api/v1/tasks", 401, "anonymous"),
        ("GET", "/api/v1/tasks", 401, "anonymous"),
        ("DELETE", "/api/v1/tasks/default/mine", 403, "viewer-bot"),
        ("GET", "/api/v1/runs", 200, "admin-bot"),
    ]
    assert all(isinstance(r.fields["duration_ms"], float) for r in requests)  # type: ignore[attr-defined]

    failures = [r.fields for r in caplog.records if r.getMessage() == "authentication failed"]  # type: ignore[attr-defined]
    assert [f["reason"] for f in failures] == ["unknown token", "jwt expired"]
    assert failures[0]["client"] == "testclient"
    assert failures[0]["path"] == "/api/v1/tasks"

    for fmt in ("logfmt", "json"):
        formatter = _Formatter(fmt)
        text = "\n".join(formatter.format(r) for r in caplog.records)
        for secret in secrets:
            assert secret not in text
            assert secret[:12] not in text
        assert "Bearer" not in text
