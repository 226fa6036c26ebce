"""A ``%2F`` in a request's path is a character of its segment, never a separator: a namespace
or a name holding one is not a DNS-1123 label (a ``422``, as README says of every such name),
and a route's fixed part spelled with one is no route (a ``404``). Decoded before routing,
``POST /api/v1/tasks%2Fdefault%2Fhello%2Fruns`` started a run, and ``GET
/api%2Fv1%2Fruns`` listed the runs: a proxy or mesh in front that allows or denies by the path
as sent (Envoy, and so Istio's AuthorizationPolicy, leave ``%2F`` encoded) saw another path
than crontask served."""

from __future__ import annotations

import pytest

from tests.api.conftest import TestClient


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tasks%2Fdefault%2Fhello%2Fruns",
        "/api%2Fv1%2Ftasks%2Fdefault%2Fhello%2Fruns",
        "/api/v1/tasks/default%2fhello/runs",
    ],
)
def test_a_run_is_not_started_through_an_encoded_slash(client: TestClient, path: str) -> None:
    response = client.post(path)
    # 405 for the last: its segments are a task's key (namespace "default%2Fhello", name
    # "runs"), which takes no POST.
    assert response.status_code in (404, 405, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_a_name_holding_an_encoded_slash_is_not_a_label(client: TestClient) -> None:
    response = client.get("/api/v1/tasks/default/hello%2Fx")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["location"] == ["path", "name"]


@pytest.mark.parametrize(
    "path", ["/api%2Fv1%2Fruns", "/api/v1%2Ftasks", "/api/v1/tasks%2Fdefault%2Fhello"]
)
def test_a_route_spelled_with_an_encoded_slash_is_no_route(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == f"no route matches {path}"


def test_other_escapes_still_decode(client: TestClient) -> None:
    assert client.get("/api/v1/tasks/defaul%74/hell%6F").status_code == 200
    assert client.get("/api/v1/task%73").status_code == 200
