"""One error shape for the whole API: ``application/problem+json`` (RFC 9457).

Every error - an unknown route, a wrong method, a failed login, a conflict, a malformed body, a
bug - leaves the server as a :class:`Problem`. Handlers here turn FastAPI's and Starlette's
exceptions into that shape; routes raise :class:`ProblemError` for their own errors. A bug is
logged with its traceback on the server and reaches the client as a bare 500 with no details.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope, Send

from reconciler import logs
from reconciler.controller.view import FieldError
from reconciler.sources import messages
from reconciler.sources.api import ApiTasksUnavailable
from reconciler.sources.limits import excerpt
from reconciler.sources.messages import EXCERPT_KEY
from reconciler.store import StoreUnavailable

log = logging.getLogger("crontask.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_ECHO = 2048  # the most of a request's own text (its path) a problem repeats
PROBLEM_BASE = "https://crontask.dev/problems/"
# The failing fields an answer lists, as many as a file's errors (then how many more there are).
MAX_ERRORS: Final = messages.MAX_SHOWN

# The problem type of each status this API answers with; anything else is about:blank.
_TYPES: Mapping[int, str] = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",
    409: "conflict",
    412: "precondition-failed",
    413: "too-large",
    421: "misdirected-request",
    422: "invalid-request",
    431: "headers-too-large",
    500: "internal-error",
    503: "unavailable",
}


class FieldProblem(BaseModel):
    """One failing input: where it is (``["body", "spec", "schedule"]``) and what is wrong."""

    location: list[str | int] = Field(examples=[["body", "spec", "schedule"]])
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 describes it. ``errors`` is set for invalid input (422)."""

    type: str = Field(
        description="A URI naming the kind of problem.",
        examples=["https://crontask.dev/problems/not-found"],
    )
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(ge=100, le=599, description="The HTTP status code.")
    detail: str = Field(description="What went wrong this time, for a human.")
    instance: str = Field(description="The path of the request that failed.")
    errors: list[FieldProblem] | None = Field(
        None, description="For invalid input: each failing field."
    )


class ProblemError(Exception):
    """Raised by routes for an error response; turned into a :class:`Problem`."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        errors: Sequence[FieldProblem] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})


def field_problems(
    errors: Sequence[FieldError], prefix: Sequence[str] = ("body",), *, more: int = 0
) -> list[FieldProblem]:
    """``errors`` as an answer lists them, bounded as a file's errors are: the first
    :data:`MAX_ERRORS`, each key of a location a short excerpt (keys are the request's own
    text: a 900 KB key is not echoed; messages quote only excerpts already, see
    ``sources.messages``), then, if there were more (``more`` counts those the caller left
    out already), one entry at ``prefix`` saying how many."""
    shown = [
        FieldProblem(location=bounded_location([*prefix, *e.location]), message=e.message)
        for e in errors[:MAX_ERRORS]
    ]
    return shown + _cut_notice(len(errors) - len(shown) + more, prefix)


def _cut_notice(count: int, prefix: Sequence[str | int]) -> list[FieldProblem]:
    """The last entry of a list cut at :data:`MAX_ERRORS` (none if nothing was cut)."""
    if count <= 0:
        return []
    return [
        FieldProblem(
            location=bounded_location(prefix),
            message=messages.more_problems(count, MAX_ERRORS),
        )
    ]


def bounded_location(parts: Iterable[str | int]) -> list[str | int]:
    """Each key an excerpt, as ``sources.messages.dotted`` quotes a file's keys."""
    return [p if isinstance(p, int) else excerpt(str(p), EXCERPT_KEY) for p in parts]


def problem_body(
    status: int,
    detail: str,
    instance: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    errors: Sequence[FieldProblem] | None = None,
) -> dict[str, Any]:
    slug = kind or _TYPES.get(status)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    problem = Problem(
        type=PROBLEM_BASE + slug if slug else "about:blank",
        title=title or phrase,
        status=status,
        # A 100 KB path must not make a 200 KB answer (nor a 200 KB log line downstream).
        detail=logs.bounded(detail, MAX_ECHO),
        instance=logs.bounded(instance, MAX_ECHO),
        errors=list(errors) if errors is not None else None,
    )
    return problem.model_dump(mode="json", exclude_none=True)


def problem_response(
    status: int,
    detail: str,
    instance: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    errors: Sequence[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, instance, kind=kind, title=title, errors=errors),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers) if headers else None,
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this path (Starlette's 405 names only one route's)."""
    methods: set[str] = set()
    scope: Scope = {**request.scope, "method": "\x00"}  # matches no route fully
    for route in request.app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.PARTIAL:
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")  # app.HeadAsGet
    return sorted(methods)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.url.path}"
    elif exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed on {request.url.path}" + (
            f"; allowed: {', '.join(allowed)}" if allowed else ""
        )
    return problem_response(exc.status_code, detail, request.url.path, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status,
        exc.detail,
        request.url.path,
        kind=exc.kind,
        title=exc.title,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    found = exc.errors()
    errors = field_problems(
        [
            FieldError(
                tuple(p if isinstance(p, int) else str(p) for p in e.get("loc", ())),
                str(e.get("msg", "invalid")),
            )
            for e in found[:MAX_ERRORS]
        ],
        (),
        more=max(0, len(found) - MAX_ERRORS),
    )
    detail = "; ".join(f"{'.'.join(map(str, e.location))}: {e.message}" for e in errors[:5]) + (
        f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    )
    return problem_response(
        422, detail or "invalid request", request.url.path, title="Invalid request", errors=errors
    )


async def _on_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning(
        "run store unavailable", extra={"fields": {"path": request.url.path, "error": str(exc)}}
    )
    return problem_response(
        503,
        "the run store is temporarily unavailable; retry later",
        request.url.path,
        headers={"Retry-After": "5"},
    )


async def _on_api_tasks_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The folder of API tasks gone (a volume not mounted, moved away), a full or failing disk:
    # not the run store, which may be fine (/readyz says so). A 503 all the same: the request
    # is not wrong and works unchanged once the folder is back (a 500 would say crontask is).
    log.warning(
        "api task store unavailable",
        extra={"fields": {"path": request.url.path, "error": str(exc)}},
    )
    return problem_response(
        503,
        f"the store of API-owned tasks is unavailable: {exc}; retry once it is back "
        "(GET /api/v1/sources shows the API source's error)",
        request.url.path,
        kind="api-tasks-unavailable",
        title="API tasks unavailable",
        headers={"Retry-After": "5"},
    )


async def _on_timeout(request: Request, exc: Exception) -> JSONResponse:
    # A write waited out the lock of its key (another write of that task) or the loop's
    # answer: nothing is wrong with the request, and it may be sent again.
    log.warning(
        "request timed out", extra={"fields": {"path": request.url.path, "error": str(exc)}}
    )
    return problem_response(
        503,
        "the change could not be completed in time (another write of this task, or a busy "
        "scheduler); retry later",
        request.url.path,
        headers={"Retry-After": "5"},
    )


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the problem shape."""
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StoreUnavailable, _on_store_unavailable)
    app.add_exception_handler(ApiTasksUnavailable, _on_api_tasks_unavailable)
    app.add_exception_handler(TimeoutError, _on_timeout)


def internal_error_body(path: str) -> bytes:
    """The body of a 500: says nothing about the failure (the log has the traceback)."""
    body = problem_body(500, "an internal error occurred; the server log has the details", path)
    return json.dumps(body).encode()


async def send_problem(
    send: Send,
    status: int,
    detail: str | None,
    path: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer with a problem straight from ASGI middleware, before any route (or FastAPI's
    handlers) runs. ``detail=None`` is a 500 that says nothing (see :func:`internal_error_body`)."""
    if detail is None:
        body = internal_error_body(path)
    else:
        body = json.dumps(problem_body(status, detail, path)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
