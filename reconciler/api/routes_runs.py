"""``/api/v1/runs``: the run history, from the run store.

Store calls block (SQLite, PostgreSQL), so the endpoints are ``def``: FastAPI runs them in its
threadpool and the event loop the scheduler shares never waits on the database.

A page of the list ends early, with a ``continue`` token like any other, after about
:data:`RUNS_PAGE_BYTES` of runs (as the task list does after ``TASKS_PAGE_BYTES``): its JSON is
built in crontask's memory at once, and partly on that loop. A run's message is stored within
4 KiB (``store.records``), so a full page of runs recorded now is never cut; runs recorded whole
before that bound (up to 128 KiB of message each) made ``?limit=1000`` a 128 MB answer.
"""

from __future__ import annotations

import json
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
    within_bytes,
)
from reconciler.api.problems import FieldProblem, ProblemError
from reconciler.api.routing import GuardedRoute, Runtime, operation_id, problem_responses
from reconciler.controller.store_calls import PAGE_READ_WAIT, reads_of
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.sources.limits import MIB, format_size
from reconciler.store.query import MAX_PAGE_SIZE, Cursor, RunQuery

router = APIRouter(
    prefix="/api/v1",
    route_class=GuardedRoute,
    tags=["runs"],
    generate_unique_id_function=operation_id,
)

RUNS_PAGE_DEFAULT: Final = 500
RUNS_PAGE_MAX: Final = MAX_PAGE_SIZE  # the store's bound: a page is one round trip
NOT_A_CURSOR: Final = "not a cursor this API issued"
# The runs of one page, as this module counts them (_run_bytes): 1 000 runs whose messages are
# as long as stored (4 KiB) take some 5 MiB and fit.
RUNS_PAGE_BYTES: Final = 8 * MIB
# What a run takes in the list's JSON besides its id, task, reason and message: the field names,
# the times, the numbers (about 300 bytes; counted high).
_RUN_FIELDS_BYTES: Final = 400


@router.get(
    "/runs",
    response_model=RunListOut,
    summary="List runs, newest first",
    description="Each attempt is an item. Filters combine with AND; `since` is inclusive and "
    "`until` exclusive, both on the scheduled time. Page with `metadata.continue`: pass it as "
    "`continue` with the same filters; it is null on the last page. (`cursor` and `nextCursor` "
    "are the same token under their former names.) A page of runs with long messages ends early, "
    f"after about {format_size(RUNS_PAGE_BYTES)}, with `continue` set like any other.",
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
    shown = within_bytes(page.items, _run_bytes, RUNS_PAGE_BYTES)
    following = page.next_cursor
    if shown < len(page.items):  # the store's own token, for the run the page ends with
        following = Cursor.after(page.items[shown - 1]).encode()
    return RunListOut(
        metadata=ListMeta(continue_=following),
        items=runs_out(page.items[:shown]),
        next_cursor=following,
    )


def _run_bytes(record: RunRecord) -> int:
    """About what ``record`` takes in the list's JSON: its texts as encoded (a control
    character escaped is six bytes), the rest a fixed allowance."""
    texts = [record.id, record.task, record.reason, record.message]
    return len(json.dumps(texts, ensure_ascii=False).encode()) + _RUN_FIELDS_BYTES


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
