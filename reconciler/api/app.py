"""The crontask REST API: :func:`create_app` builds it over a :class:`RuntimeView`.

- ``/healthz`` (alive), ``/readyz`` (every readiness check passes), ``/metrics`` (Prometheus,
  ``routes_metrics.py``)
- ``/api/v1/tasks`` and ``/api/v1/runs`` (``routes_tasks.py``, ``routes_runs.py``)
- ``/api/v1/sources``, ``/api/v1/hooks/git``, ``/api/v1/plan``, ``/api/v1/members``
  (``routes_sources.py``, ``routes_plan.py``, ``routes_members.py``)
- ``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, with every asset served here: open
  to all, with or without auth (the status page links to ``/docs``, whose page the browser
  loads without a bearer token, and the document describes no task)

Every error is ``application/problem+json`` (``problems.py``); every route declares the role it
needs and gets it enforced (``routing.py``, ``auth.py``); every request is logged as one
structured line naming the caller but never their credential.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import anyio
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import Scope

from reconciler import __version__
from reconciler.api import (
    docs,
    problems,
    routes_members,
    routes_metrics,
    routes_plan,
    routes_runs,
    routes_sources,
    routes_tasks,
)
from reconciler.api.admission import BODY_SECONDS, GIT_HOOK, UNQUEUED, Admission
from reconciler.api.auth import (
    PUBLIC,
    REQUIRED_ROLE_KEY,
    AuthConfig,
    AuthFailed,
    RequiredRole,
    role_extra,
)
from reconciler.api.authfile import AuthFile
from reconciler.api.door import (
    HEAD_TOO_LARGE,
    HOOK_TOO_LARGE_DESCRIPTION,
    TOO_LARGE_DESCRIPTION,
    HeadAsGet,
    RequestLog,
    busy,
)
from reconciler.api.hosts import BARE_PROBE, ORIGINS_STATE, LoopbackHosts, external_origin
from reconciler.api.models import CRONTASK_SCHEMA_REF, HealthOut, ReadinessOut, ReadinessProblem
from reconciler.api.problems import PROBLEM_MEDIA_TYPE, Problem
from reconciler.api.routing import (
    SAFE_METHODS,
    ApiContext,
    GuardedRoute,
    authorization,
    context,
    operation_id,
    problem_responses,
    required_role,
)
from reconciler.api.singletons import SINGLETONS
from reconciler.api.slashes import SlashRedirect
from reconciler.api.webhook_secret import WebhookSecret
from reconciler.controller.view import RuntimeView
from reconciler.core.model import CronTask
from reconciler.core.urls import page_base
from reconciler.sinks.metrics import Metrics

BEARER_SCHEME: Final = "bearerAuth"
TITLE: Final = "crontask"
OPENAPI_URL: Final = "/openapi.json"
SENT_TWICE: Final = f"A header of one value ({', '.join(SINGLETONS.values())}) sent twice"
CROSS_SITE: Final = "a request a browser marks as sent by another site (Sec-Fetch-Site, Origin)"

DESCRIPTION = """\
The API of a running crontask: the tasks it schedules, their runs, manual triggers, and
API-owned tasks. Errors are `application/problem+json` (RFC 9457). With authentication
configured, send `Authorization: Bearer <token>`; each operation's `x-required-role` says the
role it needs (`viewer` < `operator` < `admin`).
"""


def _authenticates(scope: Scope) -> bool:
    """Whether a request's credential authenticates (any does without auth): only such a plan
    may wait for its turn (``admission.PLANS``); a stranger's is answered 401 by the guard,
    and must not hold the plans' places meanwhile."""
    auth = context(Request(scope)).auth
    if auth is None:
        return True
    try:
        auth.authenticate(authorization(Headers(scope=scope)))
    except AuthFailed:
        return False
    return True


def create_app(
    runtime: RuntimeView,
    *,
    auth: AuthConfig | None,
    metrics: Metrics,
    webhook_secret: bytes | WebhookSecret | None = None,
    hosts: Collection[str] | None = None,
    auth_file: AuthFile | None = None,
    external_url: str | None = None,
    max_tasks: int | None = None,
    allow_empty: bool = False,
) -> FastAPI:
    """The API over ``runtime``. ``auth=None`` leaves every route open (loopback use only:
    see :func:`reconciler.api.auth.check_listen`). ``hosts``: answer only requests whose
    ``Host`` is a loopback name or one of these (or, without auth, an IP address), with or
    without auth (a server on loopback, or any without auth:
    :func:`reconciler.api.hosts.names_answered`); None: any. ``auth_file``:
    where ``auth`` was read, read again when it changes (see ``authfile.py``).
    ``external_url``: ``--external-url``, whose origin a browser's write may come from too.
    ``max_tasks``, ``allow_empty``: the server's ``--max-tasks`` and ``--allow-empty``, which
    ``POST /api/v1/plan`` applies as a pass does (None: no bound)."""
    metrics_role: RequiredRole = (
        "viewer" if auth is not None and auth.metrics_require_auth else PUBLIC
    )
    routes = [
        *_probes_router().routes,
        *routes_metrics.router(metrics_role).routes,
        *_schema_router().routes,
        *docs.router(OPENAPI_URL, TITLE, external_url).routes,
        *routes_tasks.router.routes,
        *routes_runs.router.routes,
        *routes_sources.router.routes,
        *routes_plan.router.routes,
        *routes_members.router.routes,
    ]
    for route in routes:  # fail at start-up, not in production, if a route lacks a role
        if not isinstance(route, GuardedRoute):
            raise RuntimeError(f"{route!r} is not a GuardedRoute")
        required_role(route)
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # FastAPI's pages load their assets from a CDN: see docs.py
        redoc_url=None,
        openapi_url=None,  # served by _schema_router, whose route declares its role
        routes=routes,
        # A path with a trailing slash is redirected by SlashRedirect, with a relative
        # Location: Starlette's was built from the caller's Host header.
        redirect_slashes=False,
    )
    app.state.crontask = ApiContext(
        runtime=runtime,
        auth=auth,
        metrics=metrics,
        webhook_secret=WebhookSecret(webhook_secret)
        if isinstance(webhook_secret, bytes)
        else webhook_secret,
        auth_file=auth_file,
    )
    origin = external_origin(external_url)
    setattr(app.state, ORIGINS_STATE, frozenset({origin} if origin else ()))
    setattr(app.state, routes_plan.OPTIONS_STATE, routes_plan.ServerOptions(max_tasks, allow_empty))
    problems.install(app)
    app.add_middleware(SlashRedirect)
    app.add_middleware(HeadAsGet)
    # Inside RequestLog: a refusal is logged too.
    app.add_middleware(Admission, busy=busy, may_queue_plan=_authenticates)
    if hosts is not None:  # before a request takes an admission slot, and logged
        app.add_middleware(LoopbackHosts, also=hosts, authenticated=auth is not None)
    app.add_middleware(RequestLog)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            misdirected, base = hosts is not None, page_base(external_url)
            app.openapi_schema = _openapi(app, auth, misdirected=misdirected, base=base)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _probes_router() -> APIRouter:
    router = APIRouter(
        route_class=GuardedRoute, tags=["health"], generate_unique_id_function=operation_id
    )
    probes = anyio.CapacityLimiter(4)  # the threads in which readiness probes wait

    @router.get(
        "/healthz",
        response_model=HealthOut,
        summary="Liveness: 200 while the process serves requests",
        openapi_extra=role_extra(PUBLIC),
    )
    async def healthz() -> HealthOut:
        return HealthOut()

    @router.get(
        "/readyz",
        response_model=ReadinessOut,
        summary="Readiness: 200 if every check passes, else 503",
        openapi_extra=role_extra(PUBLIC),
        responses={503: {"model": ReadinessProblem, "description": "A check fails"}},
    )
    async def readyz(request: Request) -> Response:
        # Its wait for the store (at most 2 s, one ping shared by all) is in threads of the
        # probes' own: however many probes wait, the API and /metrics keep theirs.
        runtime = context(request).runtime
        checks = dict(await anyio.to_thread.run_sync(runtime.readiness, limiter=probes))
        ready = all(checks.values())
        failing = ", ".join(sorted(name for name, ok in checks.items() if not ok))
        if request.scope.get(BARE_PROBE):
            # A Host answered only as a probe's (hosts.PROBES): its status, no check named.
            checks, failing = {}, ""
        if ready:
            return JSONResponse(ReadinessOut(ready=True, checks=checks).model_dump(mode="json"))
        detail = f"not ready: {failing}" if failing else "not ready"
        problem = problems.problem_body(503, detail, request.url.path)
        problem.update(ready=False, checks=checks)
        return JSONResponse(problem, status_code=503, media_type=PROBLEM_MEDIA_TYPE)

    return router


def _schema_router() -> APIRouter:
    router = APIRouter(route_class=GuardedRoute, generate_unique_id_function=operation_id)

    @router.get(OPENAPI_URL, include_in_schema=False, openapi_extra=role_extra(PUBLIC))
    def openapi_document(request: Request) -> JSONResponse:
        # A plain `def`: the first call builds the document, CPU kept off the event loop.
        return JSONResponse(request.app.openapi())

    return router


def _openapi(
    app: FastAPI, auth: AuthConfig | None, *, misdirected: bool, base: str = ""
) -> dict[str, Any]:
    """FastAPI's document, completed: problem responses as ``application/problem+json``, the
    CronTask schema, the bearer scheme on every protected operation (when auth is on). ``base``:
    the path a proxy serves crontask under (``core.urls.page_base``), the document's server, which
    the docs' "Try it out" sends to."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        servers=[{"url": base}] if base else None,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    crontask = CronTask.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    schemas.update(crontask.pop("$defs", {}))
    schemas["CronTask"] = crontask
    resource = schemas["TaskOut"]["properties"]["resource"]
    schemas["TaskOut"]["properties"]["resource"] = {
        "$ref": CRONTASK_SCHEMA_REF,
        "description": resource.get("description", ""),
    }
    problem_schema = {"$ref": "#/components/schemas/Problem"}
    schemas.setdefault(
        "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    if auth is not None:
        components["securitySchemes"] = {
            BEARER_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "a static token, or a JWT from the configured issuer",
            }
        }
    for path, path_item in doc.get("paths", {}).items():
        for method, op in path_item.items():
            if not isinstance(op, dict) or method == "parameters":
                continue
            if auth is not None and op.get(REQUIRED_ROLE_KEY) != PUBLIC:
                op["security"] = [{BEARER_SCHEME: []}]
            responses = op.setdefault("responses", {})
            responses.update(_refusals(path, method, op, auth=auth, misdirected=misdirected))
            _declare_headers(path, responses)
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    declared = response.get("content", {}).get("application/json", {})
                    schema = declared.get("schema", problem_schema)
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": schema}}
    return doc


def _refusals(
    path: str, method: str, op: dict[str, Any], *, auth: AuthConfig | None, misdirected: bool
) -> dict[str, dict[str, str]]:
    """The answers of an operation that come from the layers around its route (the guard,
    admission, the request log), merged over what the route declares."""
    responses: dict[str, dict[str, str]] = op.get("responses", {})
    found: dict[str, dict[str, str]] = {"400": {"description": SENT_TWICE}}
    forbidden = []
    if auth is not None and op.get(REQUIRED_ROLE_KEY) != PUBLIC:
        found["401"] = {"description": problem_responses(401)[401]["description"]}
        forbidden.append(problem_responses(403)[403]["description"])
    write = method.upper() not in SAFE_METHODS
    if write:
        # The guard refuses a write a browser marks as another site's, with or without auth
        # (routing.GuardedRoute).
        forbidden.append(CROSS_SITE)
    if forbidden:
        said = "; or ".join(forbidden)
        found["403"] = {"description": said[0].upper() + said[1:]}
    if "500" not in responses:
        found["500"] = {"description": "Internal error"}
    if path not in UNQUEUED and "503" not in responses:
        found["503"] = {"description": "Busy: retry after Retry-After"}
    if misdirected and "421" not in responses:
        found["421"] = {"description": "The Host header names another site"}
    # The request log refuses a head over the limit on any path, before any route runs.
    found["431"] = {"description": HEAD_TOO_LARGE[0].upper() + HEAD_TOO_LARGE[1:]}
    if (write or "requestBody" in op) and "413" not in responses:
        # The request log refuses a declared length over the limit before any route runs.
        large = HOOK_TOO_LARGE_DESCRIPTION if path == GIT_HOOK else TOO_LARGE_DESCRIPTION
        found["413"] = {"description": large}
    if "requestBody" in op and "408" not in responses:
        # A body that is not JSON is a 422 like any invalid body (problems.py), never 400.
        found["408"] = {"description": f"The body did not arrive within {BODY_SECONDS:g} s"}
    return found


def _declare_headers(path: str, responses: dict[str, Any]) -> None:
    """The headers sent with the refusals every route may answer: ``Retry-After`` with a 503
    (busy, the store away, a write that timed out: all say when to ask again; the readiness
    probe's 503 is a state, not a refusal), ``WWW-Authenticate`` with a 401 (routing.py)."""
    declared = {
        "503": ("Retry-After", "seconds to wait before asking again", "integer"),
        "401": ("WWW-Authenticate", 'the challenge: `Bearer realm="crontask"`', "string"),
    }
    for status, (name, description, kind) in declared.items():
        if status not in responses or (status == "503" and path in UNQUEUED):
            continue
        headers = responses[status].setdefault("headers", {})
        headers.setdefault(name, {"description": description, "schema": {"type": kind}})
