"""One error shape: every error is application/problem+json, and no stack trace leaves."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.api.app import SENT_TWICE, create_app
from reconciler.controller.view import Triggered
from reconciler.sinks.metrics import Metrics
from reconciler.store import MemoryRunStore, RunPage, RunQuery, StoreUnavailable
from tests.api.conftest import AppFactory, TestClient
from tests.api.fakes import FakeRuntime

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


def assert_problem(response: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["type"].startswith(("https://", "about:blank"))
    if kind:
        assert body["type"] == f"https://crontask.dev/problems/{kind}"
    return body


def test_unknown_route(client: TestClient) -> None:
    body = assert_problem(client.get("/api/v1/nope"), 404, "not-found")
    assert body["instance"] == "/api/v1/nope"


def test_method_not_allowed_lists_every_allowed_method(client: TestClient) -> None:
    response = client.patch("/api/v1/tasks/default/hello")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "DELETE, GET, HEAD, PUT"


def test_malformed_json(client: TestClient) -> None:
    response = client.post(
        "/api/v1/tasks", content=b'{"apiVersion": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "invalid-request")
    assert body["errors"][0]["location"][0] == "body"


def test_body_that_is_not_an_object(client: TestClient) -> None:
    body = assert_problem(client.post("/api/v1/tasks", json=[1, 2]), 422, "invalid-request")
    assert body["errors"] == [
        {"location": ["body"], "message": "Input should be a valid dictionary"}
    ]


def test_invalid_definition_names_each_field(client: TestClient) -> None:
    document = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "x"},
        "spec": {"schedule": "* 25 * * *", "command": {"args": ["true"]}, "bogus": 1},
    }
    body = assert_problem(client.post("/api/v1/tasks", json=document), 422, "invalid-definition")
    errors = {tuple(e["location"]): e["message"] for e in body["errors"]}
    assert errors[("body", "spec", "schedule")] == "hour field: 25 is out of range 0-23"
    assert ("body", "spec", "bogus") in errors


def test_query_validation(client: TestClient) -> None:
    body = assert_problem(client.get("/api/v1/runs?limit=0"), 422, "invalid-request")
    assert body["errors"][0]["location"] == ["query", "limit"]
    body = assert_problem(client.get("/api/v1/runs?status=nope"), 422)
    assert body["errors"][0]["location"] == ["query", "status"]
    body = assert_problem(client.get("/api/v1/runs?since=2026-01-01T00:00:00"), 422)
    assert body["errors"][0]["location"] == ["query", "since"]
    body = assert_problem(client.get("/api/v1/runs?cursor=garbage"), 422)
    assert body["errors"][0]["location"] == ["query", "cursor"]


def test_body_too_large(client: TestClient) -> None:
    big = b'{"x": "' + b"a" * (2 << 20) + b'"}'
    json_type = {"content-type": "application/json"}
    assert_problem(client.post("/api/v1/tasks", content=big, headers=json_type), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    response = client.post("/api/v1/tasks", content=chunks(), headers=json_type)
    assert_problem(response, 413)


class Exploding(FakeRuntime):
    def trigger(self, key: str) -> Triggered:
        raise RuntimeError("secret internals: /var/lib/db password=hunter2")


def test_a_bug_is_a_bare_500_and_logged_with_traceback(
    make_app: AppFactory, runtime: FakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    rt = Exploding(runtime.tasks())
    with (
        caplog.at_level(logging.INFO, logger="crontask.api"),
        TestClient(make_app(rt=rt), raise_server_exceptions=False) as client,
    ):
        response = client.post("/api/v1/tasks/default/hello/runs")
    body = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert body["detail"] == "an internal error occurred; the server log has the details"
    failed = [r for r in caplog.records if r.getMessage() == "request failed"]
    assert failed
    assert failed[0].exc_info is not None
    logged = [r for r in caplog.records if r.getMessage() == "request"]
    assert logged[-1].fields["status"] == 500  # type: ignore[attr-defined]


class DownStore(MemoryRunStore):
    def query(self, q: RunQuery) -> RunPage:
        raise StoreUnavailable("database is locked")


def test_store_unavailable_is_503(make_app: AppFactory) -> None:
    rt = FakeRuntime()
    rt._store = DownStore()
    with TestClient(make_app(rt=rt), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/runs")
    assert_problem(response, 503, "unavailable")
    assert response.headers["retry-after"] == "5"


class Contended(FakeRuntime):
    def put_api_task(self, task: Any, *, if_match: Any = None) -> Any:
        raise TimeoutError("another write of default/x took longer than 30s")


def test_a_write_that_times_out_is_503_to_retry(make_app: AppFactory) -> None:
    document = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "x", "namespace": "default"},
        "spec": {"schedule": "* * * * *", "command": {"args": ["true"]}},
    }
    with TestClient(make_app(rt=Contended()), raise_server_exceptions=False) as client:
        response = client.put("/api/v1/tasks/default/x", json=document)
    body = assert_problem(response, 503, "unavailable")
    assert response.headers["retry-after"] == "5"
    assert body["detail"].endswith("retry later")


def test_problem_responses_are_declared(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )
            if path.startswith("/api/v1"):
                assert "422" in op["responses"]
                assert "500" in op["responses"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_declared_statuses_are_the_ones_answered(runtime: FakeRuntime) -> None:
    """A body that is not JSON is a 422 (never 400); a slow body a 408; with a host list, a
    foreign Host a 421: each is declared where it can happen, and 400 only for what it is
    answered for, a one-value header sent twice (``tests/api/test_openapi_behind_a_path.py``)."""
    app = create_app(runtime, auth=None, metrics=Metrics(), hosts=["ct.example"])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        bad = client.post(
            "/api/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 422
        foreign = client.get("/api/v1/tasks", headers={"host": "evil.example"})
        assert foreign.status_code == 421
        doc = client.get("/openapi.json").json()
    create = doc["paths"]["/api/v1/tasks"]["post"]["responses"]
    assert {"408", "413", "421", "422"} <= set(create)
    for item in doc["paths"].values():
        for op in item.values():
            assert op["responses"]["400"]["description"] == SENT_TWICE
            assert "421" in op["responses"]
    with TestClient(create_app(runtime, auth=None, metrics=Metrics())) as client:
        doc = client.get("/openapi.json").json()
    assert "421" not in doc["paths"]["/api/v1/tasks"]["get"]["responses"]
