"""An http task's URL carries its credentials (``user:password@``, ``?token=``) and, for a
webhook, its secret in the path: a caller who may not write tasks (a viewer, an operator)
reads the URL as run messages show it; an admin, and the anonymous caller of an API without
tokens, reads it exactly, so that what a GET answers PUTs back unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.api.auth import AuthConfig, Role
from reconciler.core.model import CronTask
from tests.api.conftest import STATIC_TOKENS, AppFactory, TestClient, bearer, make_jwt, write_auth
from tests.api.fakes import FakeRuntime, view
from tests.helpers import task_doc

PASSWORD = "UrlPassw0rdSecret"  # noqa: S105 - a test value
TOKEN = "UrlQueryTok3nSecret"  # noqa: S105 - a test value
HOOK = "SlackPathSecret"
CREDS_URL = f"https://svc:{PASSWORD}@api.example/hook?token={TOKEN}&v=1"
SLACK_URL = f"https://hooks.slack.com/services/T000/B000/{HOOK}"
SECRETS = (PASSWORD, TOKEN, HOOK)


def _http(url: str) -> dict[str, Any]:
    return {"command": None, "http": {"method": "POST", "url": url, "body": "{}"}}


@pytest.fixture
def secret_runtime() -> FakeRuntime:
    runtime = FakeRuntime(
        [
            view("creds", **_http(CREDS_URL)),
            view("slack", "ops", kind="git", **_http(SLACK_URL)),
            view("plain"),
        ]
    )
    runtime.put_api_task(CronTask.model_validate(task_doc("mine", **_http(CREDS_URL))))
    return runtime


@pytest.fixture
def authed(make_app: AppFactory, secret_runtime: FakeRuntime, tmp_path: Path) -> TestClient:
    app = make_app(AuthConfig.load(write_auth(tmp_path)), rt=secret_runtime)
    return TestClient(app, raise_server_exceptions=False)


def _urls(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    answer = client.get("/api/v1/tasks", headers=headers)
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    return {
        t["key"]: t["resource"]["spec"]["http"]["url"] for t in items if t["key"] != "default/plain"
    }


@pytest.mark.parametrize(
    "headers",
    [
        bearer(STATIC_TOKENS[Role.VIEWER]),
        bearer(STATIC_TOKENS[Role.OPERATOR]),
        bearer(make_jwt("viewer")),
        bearer(make_jwt(None, role=["viewer", "operator"])),
    ],
    ids=["static viewer", "static operator", "jwt viewer", "jwt role list"],
)
def test_a_reader_sees_the_url_without_its_secrets(
    authed: TestClient, headers: dict[str, str]
) -> None:
    assert _urls(authed, headers) == {
        "default/creds": "https://api.example/***?token=***&v=***",
        "default/mine": "https://api.example/***?token=***&v=***",
        "ops/slack": "https://hooks.slack.com/***",
    }
    one = authed.get("/api/v1/tasks/ops/slack", headers=headers)
    assert one.status_code == 200
    assert one.json()["resource"]["spec"]["http"]["url"] == "https://hooks.slack.com/***"
    mine = authed.get("/api/v1/tasks/default/mine", headers=headers)
    # The version digests the stored text, URL whole: a reader could check guesses against it.
    assert "ETag" not in mine.headers
    assert mine.json()["resourceVersion"] is None
    for answer in (authed.get("/api/v1/tasks", headers=headers), one, mine):
        assert not any(secret in answer.text for secret in SECRETS)
    # The rest of the action is as it is.
    assert mine.json()["resource"]["spec"]["http"]["body"] == "{}"


@pytest.mark.parametrize(
    "headers",
    [bearer(STATIC_TOKENS[Role.ADMIN]), bearer(make_jwt("admin"))],
    ids=["static admin", "jwt admin"],
)
def test_an_admin_reads_the_url_exactly_and_a_get_puts_back_unchanged(
    authed: TestClient, headers: dict[str, str]
) -> None:
    assert _urls(authed, headers) == {
        "default/creds": CREDS_URL,
        "default/mine": CREDS_URL,
        "ops/slack": SLACK_URL,
    }
    got = authed.get("/api/v1/tasks/default/mine", headers=headers)
    put = authed.put(
        "/api/v1/tasks/default/mine",
        json=got.json()["resource"],
        headers={**headers, "If-Match": got.headers["ETag"]},
    )
    assert put.status_code == 200, put.text
    assert put.json()["resource"] == got.json()["resource"]


def test_without_tokens_the_anonymous_admin_reads_the_url_exactly(
    make_app: AppFactory, secret_runtime: FakeRuntime
) -> None:
    with TestClient(make_app(rt=secret_runtime)) as client:
        assert _urls(client, {})["default/creds"] == CREDS_URL


def test_a_task_without_an_http_url_reads_the_same_for_everyone(authed: TestClient) -> None:
    path = "/api/v1/tasks/default/plain"
    viewer = authed.get(path, headers=bearer(STATIC_TOKENS[Role.VIEWER]))
    admin = authed.get(path, headers=bearer(STATIC_TOKENS[Role.ADMIN]))
    assert viewer.json()["resource"] == admin.json()["resource"]
