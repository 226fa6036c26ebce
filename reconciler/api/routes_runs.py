"""``/api/v1/runs``: the run history, from the run store.

Store calls block (SQLite, PostgreSQL), so the endpoints are ``def``: FastAPI runs them in its
threadpool and the event loop the scheduler shares never waits on the database.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query

from reconciler.api.auth import role_extra
from reconciler.api.models import ListMeta, RunAttemptOut, RunDetailOut, RunListOut, runs_out
from reconciler.api.params import (
    CONTINUE_MAX,
    ContinueQuery,
    RunId,
    Since,
    TaskKeyQuery,
    Until,
)
from reconciler.api.problems import FieldProblem, ProblemError
from reconciler.api.routing import GuardedRoute, Runtime, operation_id, problem_responses
from reconciler.controller.store_calls import PAGE_READ_WAIT, reads_of
from reconciler.core.runs import RunStatus, Trigger
from reconciler.store.query import MAX_PAGE_SIZE, RunQuery

router = APIRouter(
    prefix="/api/v1",
    route_class=GuardedRoute,
    tags=["runs"],
    generate_unique_id_function=operation_id,
)

RUNS_PAGE_DEFAULT: Final = 500
RUNS_PAGE_MAX: Final = MAX_PAGE_SIZE  # the store's bound: a page is one round trip
NOT_A_CURSOR: Final = "not a cursor this API issued"


@router.get(
    "/runs",
    response_model=RunListOut,
    summary="List runs, newest first",
    description="Each attempt is an item. Filters combine with AND; `since` is inclusive and "
    "`until` exclusive, both on the scheduled time. Page with `metadata.continue`: pass it as "
    "`continue` with the same filters; it is null on the last page. (`cursor` and `nextCursor` "
    "are the same token under their former names.)",
    openapi_extra=role_extra("viewer"),
    responses=problem_responses(422, 503),
)
def list_runs(
    runtime: Runtime,
    task: TaskKeyQuery = None,
    status: Annotated[RunStatus | None, Query()] = None,
    trigger: Annotated[Trigger | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[
        int, Query(ge=1, le=RUNS_PAGE_MAX, description=f"page size, at most {RUNS_PAGE_MAX}")
    ] = RUNS_PAGE_DEFAULT,
    continue_: ContinueQuery = None,
    cursor: Annotated[
        str | None,
        Query(
            description="the former name of `continue`",
            deprecated=True,
            max_length=CONTINUE_MAX,
            pattern=r"^[A-Za-z0-9_-]+$",
        ),
    ] = None,
) -> RunListOut:
    if continue_ is not None and cursor is not None and continue_ != cursor:
        raise _invalid_query(
            [FieldProblem(location=["query", "cursor"], message="differs from continue")]
        )
    token = continue_ if continue_ is not None else cursor
    try:
        query = RunQuery(
            task=task,
            status=status,
            trigger=trigger,
            since=since,
            until=until,
            limit=limit,
            cursor=token,
            output=False,  # the list shows none
        )
    except ValueError:
        where = "continue" if continue_ is not None else "cursor"
        raise _invalid_query(
            [FieldProblem(location=["query", where], message=NOT_A_CURSOR)]
        ) from None
    page = reads_of(runtime.store, PAGE_READ_WAIT).answer(lambda: runtime.store.query(query))
    return RunListOut(
        metadata=ListMeta(continue_=page.next_cursor),
        items=runs_out(page.items),
        next_cursor=page.next_cursor,
    )


@router.get(
    "/runs/{run_id}",
    response_model=RunDetailOut,
    summary="Get one run: every attempt, with output",
    openapi_extra=role_extra("viewer"),
    responses=problem_responses(404, 422, 503),
)
def get_run(runtime: Runtime, run_id: RunId) -> RunDetailOut:
    attempts = reads_of(runtime.store, PAGE_READ_WAIT).answer(
        lambda: runtime.store.attempts(run_id)
    )
    if not attempts:
        raise ProblemError(404, f"no run {run_id}")
    return RunDetailOut(
        id=run_id, task=attempts[0].task, attempts=[RunAttemptOut.of(r) for r in attempts]
    )


def _invalid_query(errors: list[FieldProblem]) -> ProblemError:
    detail = "; ".join(f"{'.'.join(map(str, e.location))}: {e.message}" for e in errors)
    return ProblemError(422, detail, title="Invalid request", errors=errors)
