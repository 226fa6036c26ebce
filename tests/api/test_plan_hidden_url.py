"""``POST /api/v1/plan`` for a caller who may not write tasks: both sides are compared as that
caller reads them (an http URL without its user name, password, path or query values), so no
part of the answer (steps, changes, unchanged, summary) says whether a guess of a hidden part
is right. A viewer may see and run a task, not learn its credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.api.auth import AuthConfig, Role
from tests.api.conftest import STATIC_TOKENS, AppFactory, TestClient, bearer, write_auth
from tests.api.fakes import FakeRuntime, view
from tests.api.test_plan import documents, plan
from tests.helpers import task_doc

SECRET = "https://bob:s3cretpw@hooks.example/hook/PathSecret0?token=abc123"  # noqa: S105
WRONG = "https://bob:hunter2@hooks.example/hook/PathSecret0?token=abc123"


def http(url: str, **more: Any) -> dict[str, Any]:
    return {"command": None, "http": {"url": url, **more}}


@pytest.fixture
def client(make_app: AppFactory, tmp_path: Path) -> TestClient:
    runtime = FakeRuntime([view("hook", **http(SECRET)), view("other")])
    return TestClient(make_app(AuthConfig.load(write_auth(tmp_path)), rt=runtime))


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_a_wrong_and_a_right_guess_get_the_same_answer(client: TestClient, role: Role) -> None:
    who = bearer(STATIC_TOKENS[role])
    with client:
        wrong = plan(client, documents(task_doc("hook", **http(WRONG)), task_doc("other")), **who)
        right = plan(client, documents(task_doc("hook", **http(SECRET)), task_doc("other")), **who)
    assert wrong == right
    assert wrong["summary"] == "0 to add, 0 to change, 0 to remove, 2 unchanged"
    assert "s3cretpw" not in str(wrong)


def test_an_admin_still_sees_a_change_only_in_the_hidden_parts(client: TestClient) -> None:
    with client:
        found = plan(
            client, documents(task_doc("hook", **http(WRONG))), **bearer(STATIC_TOKENS[Role.ADMIN])
        )
    assert found["steps"][0]["changes"] == [{"path": "spec.http.url", "old": SECRET, "new": WRONG}]


def test_a_viewer_sees_the_visible_changes_shown_as_it_reads_them(client: TestClient) -> None:
    moved = "https://bob:s3cretpw@hooks2.example/hook/PathSecret0?token=abc123"
    text = documents(task_doc("hook", schedule="0 3 * * *", **http(moved)))
    with client:
        found = plan(client, text, **bearer(STATIC_TOKENS[Role.VIEWER]))
    assert found["summary"].startswith("0 to add, 1 to change")
    assert found["steps"][0]["changes"] == [
        {
            "path": "spec.http.url",
            "old": "https://hooks.example/***?token=***",
            "new": "https://hooks2.example/***?token=***",
        },
        {"path": "spec.schedule", "old": "* * * * *", "new": "0 3 * * *"},
    ]
    assert "s3cretpw" not in str(found)
    assert "PathSecret0" not in str(found)
