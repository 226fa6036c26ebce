"""The OpenAPI document says where the API is reached and every answer the layers before its
routes give.

- Behind a proxy that serves crontask under a path (``--external-url
  https://x.example/crontask/``), the document names that path as its server: Swagger UI's "Try
  it out" (``/docs``) sends to the first server, and without one it sent ``/api/v1/tasks`` to
  the proxy's root, which is not crontask. Through a real proxy's rule served by uvicorn, the
  server's URL and an operation's path reach the API.
- A one-value header sent twice with different values is a ``400`` on any path
  (``api.singletons``), before any route: each operation lists it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reconciler.api.app import create_app
from reconciler.api.singletons import SINGLETONS
from reconciler.sinks.metrics import Metrics
from tests.api.fakes import FakeRuntime
from tests.uvicorn_app import uvicorn_serving
from tests.web.test_web_path_prefix import PREFIX, behind_a_proxy, runtime


def document(external_url: str | None) -> dict[str, Any]:
    app = create_app(FakeRuntime(), auth=None, metrics=Metrics(), external_url=external_url)
    doc: dict[str, Any] = app.openapi()
    return doc


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        (None, None),
        ("https://x.example", None),
        ("https://x.example/", None),
        ("https://x.example/crontask/", [{"url": "/crontask"}]),
        ("https://x.example/a b/ops", [{"url": "/a%20b/ops"}]),
    ],
)
def test_the_document_names_the_path_it_is_served_under(
    url: str | None, servers: list[dict[str, str]] | None
) -> None:
    assert document(url).get("servers") == servers


def test_try_it_out_reaches_the_api_through_the_proxy() -> None:
    app = create_app(
        runtime(), auth=None, metrics=Metrics(), external_url=f"https://x.example{PREFIX}/"
    )
    with uvicorn_serving(behind_a_proxy(app)) as url:
        doc = httpx.get(f"{url}{PREFIX}/openapi.json", timeout=10).json()
        server = doc["servers"][0]["url"]
        assert "/api/v1/tasks" in doc["paths"]
        answer = httpx.get(f"{url}{server}/api/v1/tasks", timeout=10)  # what "Try it out" sends
        assert answer.status_code == 200, answer.text
        assert sorted(t["key"] for t in answer.json()["items"]) == ["default/hello", "ops/backup"]


def test_every_operation_lists_the_400_of_a_header_sent_twice() -> None:
    doc = document(None)
    operations = [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict)
    ]
    assert len(operations) > 10
    for path, method, op in operations:
        described = op["responses"].get("400", {}).get("description", "")
        for header in SINGLETONS.values():
            assert header in described, (path, method, described)
        assert "application/problem+json" in op["responses"]["400"]["content"]


def test_the_400_is_what_the_api_answers() -> None:
    app = create_app(runtime(), auth=None, metrics=Metrics())
    with uvicorn_serving(app) as url:
        answer = httpx.get(
            f"{url}/api/v1/tasks", headers=[("Origin", "http://a"), ("Origin", "http://b")]
        )
        assert answer.status_code == 400
        assert "Origin header was sent 2 times" in answer.json()["detail"]
