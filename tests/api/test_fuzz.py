"""Property-based fuzzing of the whole API with schemathesis, in process (ASGI, no network).

Every operation of the OpenAPI document gets generated requests (bounded: a few dozen examples
each); every response must be a non-5xx, with a status, content type, headers and body the
document declares.

The schemas are loaded by fixtures, not at import: schemathesis builds every operation's cases
(its coverage phase most) when it makes the operation's test, which at import means at collection,
about 9 s of CPU in each xdist worker. Loaded lazily, the cost lands once, in the test that
runs them; a failure names its operation (``label='GET /api/v1/sources'`` in its header, the
operation in the error), though one operation cannot be selected alone (``-k``, ``--lf``): nor
could it before, when the 15 items shared one node id.
"""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig
from reconciler.api.door import MAX_BODY_BYTES
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import sha256
from tests.api.fakes import FakeRuntime, record, view
from tests.helpers import task_doc

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def seeded(runtime: FakeRuntime | None = None) -> FakeRuntime:
    """Three tasks (file, git, api) and one run; ``runtime`` emptied and seeded again."""
    views = [
        view("hello"),
        view("backup", "ops", kind="git", zone="Asia/Kolkata"),
        view("mine", kind="api"),
    ]
    if runtime is None:
        runtime = FakeRuntime(views)
    else:
        runtime.reset(views)
    runtime.store.claim(record("default/hello"))
    return runtime


def build_app(runtime: FakeRuntime | None = None) -> Any:
    return create_app(runtime or seeded(), auth=None, metrics=Metrics())


def lazily(request: pytest.FixtureRequest, schema: BaseSchema) -> BaseSchema:
    """``schema``, for the ``from_fixture`` test that asked for it.

    schemathesis 4.32's lazy test reads ``item._nodeid`` to rename the item after each operation;
    pytest 9.2 keeps the id as ``item._id`` and has no ``_nodeid``: without one the test fails
    with an AttributeError before anything is generated. The renaming it then does is inert
    (pytest reads ``_id``); a failure still names its operation (the module docstring)."""
    request.node._nodeid = request.node.nodeid
    return schema


@pytest.fixture
def open_schema(request: pytest.FixtureRequest) -> BaseSchema:
    return lazily(request, schemathesis.openapi.from_asgi("/openapi.json", build_app()))


@pytest.mark.slow  # one item of every operation's cases: 20-35 s, on one worker
@schemathesis.pytest.from_fixture("open_schema").parametrize()
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


@pytest.fixture
def secured_schema(request: pytest.FixtureRequest) -> BaseSchema:
    app = create_app(FakeRuntime([view("hello")]), auth=AUTH, metrics=Metrics())
    return lazily(request, schemathesis.openapi.from_asgi("/openapi.json", app))


@pytest.mark.slow  # as above: 15-20 s
@schemathesis.pytest.from_fixture("secured_schema").parametrize()
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


# The stateful phase: sequences of calls that follow the OpenAPI links (create a task, then
# read it, replace it with its ETag, start a run, read the run, delete the task with its ETag,
# ...), every answer checked as above. A fresh runtime per scenario, so each starts from the
# same state. A generated CronTask almost never validates (its schedule is a cron expression),
# so the bodies of creates and replaces are valid documents named from a few names: that is
# what lets sequences reach past the 422 (the stateless phase above fuzzes the bodies).
NAMES = ("a", "b", "c")
SCHEDULES = ("@hourly", "*/5 * * * *", "0 2 * * *")


TASK_BODIES = ("/api/v1/tasks", "/api/v1/tasks/{namespace}/{name}")
Steps = Counter[tuple[str, str, int]]


def stateful_machine(runtime: FakeRuntime, steps: Steps) -> Any:
    """The state machine over the API of ``runtime``, seeded again for each scenario; each answer
    is counted in ``steps`` by method, path and status."""
    api = schemathesis.openapi.from_asgi("/openapi.json", build_app(runtime))

    class Stateful(api.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            seeded(runtime)

        def before_call(self, case: Any) -> None:
            if case.method in ("POST", "PUT") and case.operation.path in TASK_BODIES:
                pick = zlib.crc32(repr(case.body).encode())
                path = case.path_parameters or {}
                case.body = task_doc(
                    path.get("name", NAMES[pick % len(NAMES)]),
                    path.get("namespace", "default"),
                    schedule=SCHEDULES[pick // 7 % len(SCHEDULES)],
                )

        def after_call(self, response: Any, case: Any) -> None:
            steps[(case.method, case.operation.path, response.status_code)] += 1

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    return Stateful


def test_the_stateful_phase_follows_the_links() -> None:
    """Its scenarios pass every check, and they got past creation to the calls that follow.

    The machine is built here, not at import, for the reason the schemas are fixtures; and the
    links are asserted on the steps of this very run, which no xdist worker can split from it."""
    steps: Steps = Counter()
    stateful_machine(seeded(), steps).run(
        settings=settings(
            max_examples=40,
            stateful_step_count=8,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
    reached = {(method, path) for method, path, status in steps if status < 400}
    for step in [
        ("POST", "/api/v1/tasks"),
        ("GET", "/api/v1/tasks/{namespace}/{name}"),
        ("PUT", "/api/v1/tasks/{namespace}/{name}"),
        ("DELETE", "/api/v1/tasks/{namespace}/{name}"),
        ("POST", "/api/v1/tasks/{namespace}/{name}/runs"),
        ("GET", "/api/v1/runs/{run_id}"),
    ]:
        assert step in reached, sorted(steps.items())
