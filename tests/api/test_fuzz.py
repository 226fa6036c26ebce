"""Property-based fuzzing of the whole API with schemathesis, in process (ASGI, no network).

Every operation of the OpenAPI document gets generated requests (bounded: a few dozen examples
each); every response must be a non-5xx, with a status, content type, headers and body the
document declares.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from reconciler.api.app import MAX_BODY_BYTES, create_app
from reconciler.api.auth import AuthConfig
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import sha256
from tests.api.fakes import FakeRuntime, record, view

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def build_app() -> Any:
    runtime = FakeRuntime(
        [
            view("hello"),
            view("backup", "ops", kind="git", zone="Asia/Kolkata"),
            view("mine", kind="api"),
        ]
    )
    runtime.store.claim(record("default/hello"))
    return create_app(runtime, auth=None, metrics=Metrics())


schema = schemathesis.openapi.from_asgi("/openapi.json", build_app())


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


ADMIN_TOKEN = "fuzz-admin-token-0123456789"  # noqa: S105
AUTH = AuthConfig.from_mapping(
    {"tokens": [{"name": "fuzzer", "sha256": sha256(ADMIN_TOKEN), "role": "admin"}]}
)
secured = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(FakeRuntime([view("hello")]), auth=AUTH, metrics=Metrics())
)


@secured.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_with_auth_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(checks=CHECKS, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    unauthenticated = case.call()
    declared = case.method.upper() == case.operation.method.upper()  # not a TRACE probe
    if declared and case.operation.definition.raw.get("x-required-role") != "public":
        # A body over the limit is refused from its size before anything else is looked at.
        sent = unauthenticated.request.body or b""
        expected = 413 if len(sent) > MAX_BODY_BYTES else 401
        assert unauthenticated.status_code == expected, (case.method, case.formatted_path)
