"""``/api/v1/runs``: the run history, from the run store.

Store calls block (SQLite, PostgreSQL), so the endpoints are ``def``: FastAPI runs them in its
threadpool and the event loop the scheduler shares never waits on the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from reconciler.api.auth import role_extra
from reconciler.api.models import RunAttemptOut, RunDetailOut, RunListOut, runs_out
from reconciler.api.problems import FieldProblem, ProblemError
from reconciler.api.routing import GuardedRoute, Runtime, operation_id, problem_responses
from reconciler.core.runs import RunStatus, Trigger
from reconciler.store.base import RunQuery

router = APIRouter(
    prefix="/api/v1",
    route_class=GuardedRoute,
    tags=["runs"],
    generate_unique_id_function=operation_id,
)

API_MAX_PAGE = 500

RFC3339 = "RFC 3339 with an offset, e.g. 2026-11-27T01:00:00Z"


@router.get(
    "/runs",
    response_model=RunListOut,
    summary="List runs, newest first",
    description="Each attempt is an item. Filters combine with AND; `since` is inclusive and "
    "`until` exclusive, both on the scheduled time. Page with `nextCursor`.",
    openapi_extra=role_extra("viewer"),
    responses=problem_responses(422, 503),
)
def list_runs(
    runtime: Runtime,
    task: Annotated[str | None, Query(description="namespace/name")] = None,
    status: Annotated[RunStatus | None, Query()] = None,
    trigger: Annotated[Trigger | None, Query()] = None,
    since: Annotated[datetime | None, Query(description=RFC3339)] = None,
    until: Annotated[datetime | None, Query(description=RFC3339)] = None,
    limit: Annotated[int, Query(ge=1, le=API_MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, Query(description="the nextCursor of the previous page of the same query")
    ] = None,
) -> RunListOut:
    naive = [
        FieldProblem(location=["query", name], message="must include a UTC offset (RFC 3339)")
        for name, value in (("since", since), ("until", until))
        if value is not None and value.tzinfo is None
    ]
    if naive:
        raise _invalid_query(naive)
    try:
        query = RunQuery(
            task=task,
            status=status,
            trigger=trigger,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    except ValueError:
        raise _invalid_query(
            [FieldProblem(location=["query", "cursor"], message="not a cursor this API issued")]
        ) from None
    page = runtime.store.query(query)
    return RunListOut(items=runs_out(page.items), next_cursor=page.next_cursor)


@router.get(
    "/runs/{run_id}",
    response_model=RunDetailOut,
    summary="Get one run: every attempt, with output",
    openapi_extra=role_extra("viewer"),
    responses=problem_responses(404, 422, 503),
)
def get_run(
    runtime: Runtime,
    run_id: Annotated[
        str, Path(description="the run's id", examples=["default.hello.20261126T213040Z"])
    ],
) -> RunDetailOut:
    attempts = runtime.store.attempts(run_id)
    if not attempts:
        raise ProblemError(404, f"no run {run_id}")
    return RunDetailOut(
        id=run_id, task=attempts[0].task, attempts=[RunAttemptOut.of(r) for r in attempts]
    )


def _invalid_query(errors: list[FieldProblem]) -> ProblemError:
    detail = "; ".join(f"{'.'.join(map(str, e.location))}: {e.message}" for e in errors)
    return ProblemError(422, detail, title="Invalid request", errors=errors)
