"""The OpenAPI document lists what the server answers: each answer below is provoked for real
(a cross-site write, a body over the limit) and must be declared where it happened; and its
schema names are the models' own, never a Python module path."""

from __future__ import annotations

import re
from typing import Any

import pytest

from reconciler.api.admission import GIT_HOOK
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.api.door import MAX_BODY_BYTES, MAX_HOOK_BODY_BYTES
from reconciler.api.routing import SAFE_METHODS
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, AppFactory, TestClient, bearer
from tests.api.fakes import FakeRuntime

PATH_VALUES = {"namespace": "default", "name": "mine", "run_id": "default.mine.20261127T010000Z"}
METHODS = ("get", "put", "post", "delete", "patch")


def writes(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, item in doc["paths"].items()
        for method in METHODS
        if method in item and method.upper() not in SAFE_METHODS
    ]


def url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


@pytest.mark.parametrize("with_auth", [False, True])
def test_every_write_declares_the_403_of_a_cross_site_request(
    make_app: AppFactory, auth_config: AuthConfig, with_auth: bool
) -> None:
    auth = auth_config if with_auth else None
    credentials = bearer(STATIC_TOKENS[Role.ADMIN]) if with_auth else {}
    with TestClient(make_app(auth), raise_server_exceptions=False) as client:
        doc = client.get("/openapi.json").json()
        found = writes(doc)
        assert ("post", "/api/v1/tasks/{namespace}/{name}/runs") in found
        for method, path in found:
            answer = client.request(
                method.upper(), url(path), headers={"Sec-Fetch-Site": "cross-site", **credentials}
            )
            assert answer.status_code == 403, (method, path, answer.text)
            declared = doc["paths"][path][method]["responses"]
            assert "403" in declared, (method, path, sorted(declared))
            assert "another site" in declared["403"]["description"]


def test_a_body_over_the_limit_is_413_wherever_one_may_be_sent(runtime: FakeRuntime) -> None:
    """Refused from its declared length by the request log, before any route runs; and where
    a route reads a body (the git webhook reads it to check its signature), a late one is 408."""
    app = create_app(runtime, auth=None, metrics=Metrics(), webhook_secret=b"s3cret")
    with TestClient(app, raise_server_exceptions=False) as client:
        doc = client.get("/openapi.json").json()
        for method, path in writes(doc):
            limit = MAX_HOOK_BODY_BYTES if url(path) == GIT_HOOK else MAX_BODY_BYTES
            answer = client.request(
                method.upper(),
                url(path),
                content=b" " * (limit + 1),
                headers={"content-type": "application/json"},
            )
            assert answer.status_code == 413, (method, path)
            assert "413" in doc["paths"][path][method]["responses"], (method, path)
    hook = doc["paths"]["/api/v1/hooks/git"]["post"]
    assert hook["requestBody"]["required"] is False
    assert {"408", "413"} <= set(hook["responses"])


def test_schema_names_are_the_models_own(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert [name for name in schemas if "__" in name or "." in name] == []
    assert "errors" in schemas["SourceOut"]["properties"]  # an item of /api/v1/sources
    assert set(schemas["SourceRefOut"]["properties"]) == {"kind", "location", "revision"}
    assert schemas["TaskOut"]["properties"]["source"] == {
        "$ref": "#/components/schemas/SourceRefOut"
    }
