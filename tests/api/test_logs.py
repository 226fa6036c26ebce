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


def test_a_long_path_is_bounded_in_the_log_and_in_the_answer(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    path = "/api/v1/tasks/default/" + "x" * 60_000  # httpx refuses URLs over 64 KiB
    with caplog.at_level(logging.INFO, logger="crontask.api"):
        for response in (client.get(path), client.delete(path), client.get("/" + "y" * 60_000)):
            assert response.status_code in (404, 422, 431)  # 431: a head past 32 KiB
            assert len(response.content) < 8_000  # the path is echoed bounded, not twice whole
        client.get("/api/v1/tasks/%00/a%00b")
    requests = [r for r in caplog.records if r.getMessage() == "request"]
    assert len(requests) == 4
    for record in requests:
        line = _Formatter("logfmt").format(record)
        assert len(line) < 1_500
        assert "\x00" not in line
    assert "chars, cut]..." in requests[0].fields["path"]  # type: ignore[attr-defined]
    assert requests[3].fields["path"] == "/api/v1/tasks/\x00/a\x00b"  # type: ignore[attr-defined]
    assert "\\u0000" in _Formatter("logfmt").format(requests[3])
