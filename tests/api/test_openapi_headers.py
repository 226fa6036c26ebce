"""The OpenAPI document declares the headers the server sends: ``Location`` on a 201 (POST,
PUT) and on a manual run's 202, ``Retry-After`` on every 503 but the readiness probe's,
``WWW-Authenticate`` on a 401; and the 431 any path answers for a request head over 32 KiB.
And a path with a trailing slash is redirected with a relative Location, never one built from
the caller's Host header, nor one that leaves this server."""

from __future__ import annotations

from typing import Any

from reconciler.api.auth import AuthConfig
from tests.api.conftest import AppFactory, TestClient
from tests.api.test_problems import assert_problem


def document(make_app: AppFactory, auth: AuthConfig | None) -> dict[str, Any]:
    with TestClient(make_app(auth)) as client:
        found: dict[str, Any] = client.get("/openapi.json").json()
    return found


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and method != "parameters"
    ]


def test_location_is_declared_where_it_is_sent(make_app: AppFactory) -> None:
    paths = document(make_app, None)["paths"]
    tasks, task = paths["/api/v1/tasks"], paths["/api/v1/tasks/{namespace}/{name}"]
    runs = paths["/api/v1/tasks/{namespace}/{name}/runs"]
    for answer in (tasks["post"]["responses"]["201"], task["put"]["responses"]["201"]):
        assert "Location" in answer["headers"]
        assert "ETag" in answer["headers"]
    assert "Location" in runs["post"]["responses"]["202"]["headers"]
    assert "Location" not in task["put"]["responses"]["200"]["headers"]


def test_retry_after_and_www_authenticate_and_431(
    make_app: AppFactory, auth_config: AuthConfig
) -> None:
    doc = document(make_app, auth_config)
    for path, method, op in operations(doc):
        responses = op["responses"]
        assert "431" in responses, (path, method)
        if "503" in responses and path != "/readyz":
            assert "Retry-After" in responses["503"].get("headers", {}), (path, method)
        if op.get("security"):
            assert "WWW-Authenticate" in responses["401"]["headers"], (path, method)


def test_a_trailing_slash_is_redirected_without_the_caller_s_host(
    make_app: AppFactory, auth_config: AuthConfig
) -> None:
    with TestClient(make_app(auth_config)) as client:
        for path, target in [
            ("/healthz/", "/healthz"),
            ("/api/v1/tasks/?limit=1", "/api/v1/tasks?limit=1"),
            ("/api/v1/tasks/ops/t1//", "/api/v1/tasks/ops/t1"),
        ]:
            answer = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
            assert (answer.status_code, answer.headers["location"]) == (307, target), path
        assert client.get("/healthz/").status_code == 200  # followed
        for path in ("//evil.example/", "/\\evil.example/"):
            answer = client.get(path, follow_redirects=False)
            assert "location" not in answer.headers, path
            assert_problem(answer, 404)
