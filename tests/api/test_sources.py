"""/api/v1/sources and the signed git webhook."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.controller.view import SourceStatus
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, TestClient, bearer, write_auth
from tests.api.fakes import FakeRuntime

SECRET = b"s3cret-webhook-key"
BODY = b'{"ref": "refs/heads/main", "after": "0123abcd"}'


def signature(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@pytest.fixture
def runtime() -> FakeRuntime:
    fake = FakeRuntime()
    fake.source_list = [
        SourceStatus("file", "tasks", tasks=2, errors=1),
        SourceStatus(
            "git",
            "https://git.example/ops/tasks.git#main",
            tasks=3,
            errors=0,
            revision="0123abcd" * 5,
            attempted_revision="0123abcd" * 5,
            last_sync=datetime(2026, 11, 27, 1, 0, tzinfo=UTC),
        ),
    ]
    return fake


@pytest.fixture
def client(runtime: FakeRuntime, tmp_path: Path) -> TestClient:
    auth = AuthConfig.load(write_auth(tmp_path))
    metrics = Metrics(sources=runtime.sources)
    app = create_app(runtime, auth=auth, metrics=metrics, webhook_secret=SECRET)
    return TestClient(app)


def test_sources_list_revisions(client: TestClient) -> None:
    response = client.get("/api/v1/sources", headers=bearer(STATIC_TOKENS[Role.VIEWER]))
    assert response.status_code == 200
    git = response.json()["items"][1]
    assert git["kind"] == "git"
    assert git["revision"] == "0123abcd" * 5
    assert git["lastSync"] == "2026-11-27T01:00:00Z"


def test_a_good_signature_asks_for_a_fetch(client: TestClient, runtime: FakeRuntime) -> None:
    response = client.post(
        "/api/v1/hooks/git", content=BODY, headers={"X-Hub-Signature-256": signature(BODY)}
    )
    assert response.status_code == 202, response.text
    assert runtime.syncs == ["git"]


@pytest.mark.parametrize(
    "header",
    [signature(BODY, b"wrong-secret"), signature(BODY + b" "), "sha256=", "sha1=abcdef"],
)
def test_a_bad_signature_is_401_and_logged(
    client: TestClient, runtime: FakeRuntime, header: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.post(
        "/api/v1/hooks/git", content=BODY, headers={"X-Hub-Signature-256": header}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert runtime.syncs == []
    assert "webhook signature rejected" in caplog.text
    assert SECRET.decode() not in caplog.text


def test_no_signature_needs_an_operator_token(client: TestClient, runtime: FakeRuntime) -> None:
    assert client.post("/api/v1/hooks/git", content=BODY).status_code == 401
    viewer = client.post("/api/v1/hooks/git", headers=bearer(STATIC_TOKENS[Role.VIEWER]))
    assert viewer.status_code == 403
    operator = client.post("/api/v1/hooks/git", headers=bearer(STATIC_TOKENS[Role.OPERATOR]))
    assert operator.status_code == 202
    assert runtime.syncs == ["git"]


def test_no_git_source_is_404(runtime: FakeRuntime, client: TestClient) -> None:
    runtime.source_list = runtime.source_list[:1]
    response = client.post(
        "/api/v1/hooks/git", content=BODY, headers={"X-Hub-Signature-256": signature(BODY)}
    )
    assert response.status_code == 404


def test_source_metrics(client: TestClient) -> None:
    text = client.get("/metrics").text
    info = [line for line in text.splitlines() if line.startswith("crontask_source_info{")]
    assert info == ['crontask_source_info{revision="' + "0123abcd" * 5 + '",source="git"} 1']
    assert 'crontask_source_last_sync_timestamp_seconds{source="git"} 1795741200\n' in text
    assert 'crontask_source_sync_errors_total{source="git"} 0\n' in text


def test_without_tokens_the_signature_is_required(runtime: FakeRuntime) -> None:
    client = TestClient(create_app(runtime, auth=None, metrics=Metrics(), webhook_secret=SECRET))
    missing = client.post("/api/v1/hooks/git", content=BODY)
    assert missing.status_code == 401
    assert missing.json()["detail"].endswith("no x-hub-signature-256 header")
    signed = {"X-Hub-Signature-256": signature(BODY)}
    assert client.post("/api/v1/hooks/git", content=BODY, headers=signed).status_code == 202
