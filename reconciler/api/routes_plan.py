"""``POST /api/v1/plan``: what the posted CronTask documents would add, change (field by field)
and remove if they were the tasks crontask reads from files and git; a dry run, for a viewer.

The answer holds what ``crontask plan PATH --server URL`` prints: the steps, the tasks kept,
the problems (at most :data:`~reconciler.api.problems.MAX_ERRORS`, then how many more) and
the summary line. How the text is read and planned is ``planning``'s; for a caller below
admin both sides are planned as that caller reads them (an http URL without its secrets), so
no part of the answer tells a right guess of a hidden part from a wrong one.
"""

from __future__ import annotations

import dataclasses
import email.message
import threading
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from reconciler.api import admission, planning
from reconciler.api.auth import role_extra
from reconciler.api.models import CRONTASK_SCHEMA_REF
from reconciler.api.problems import MAX_ERRORS, FieldProblem, ProblemError
from reconciler.api.routes_tasks import Exact
from reconciler.api.routing import GuardedRoute, Runtime, operation_id, problem_responses
from reconciler.controller.view import RuntimeView
from reconciler.core.desired import SourceKind
from reconciler.core.plan import Operation, Step

router = APIRouter(
    prefix="/api/v1",
    route_class=GuardedRoute,
    tags=["plan"],
    generate_unique_id_function=operation_id,
)

YAML_TYPES: Final = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
)
SEND: Final = "send the documents as application/yaml (or one as application/json)"
OPTIONS_STATE: Final = "crontask_plan_options"  # where create_app leaves ServerOptions
# One plan at a time, whoever asks: a 1 MiB text is about a second of CPU-bound Python, and
# each plan made at once holds the GIL against the loop that starts the slots (16 at once, the
# API's admission limit, started per-second tasks seconds late). A plan waits for its turn at
# the API's door (admission.PLANS), holding none of its places: a plan that waited here, in a
# thread, held one, and a viewer's plans held them all. So this lock never waits: it refuses
# at once a plan that another app of this process is making.
_planning = threading.BoundedSemaphore(admission.MAX_PLANS)

_DOCUMENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "CronTask documents as a task file holds them (YAML, `---` between "
        "documents), read with a task file's bounds and messages; or one CronTask as JSON, "
        "read as `POST /api/v1/tasks` reads it, its problems worded as a file's at `body:1:1`",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"$ref": CRONTASK_SCHEMA_REF}},
        },
    }
}


@dataclasses.dataclass(frozen=True, slots=True)
class ServerOptions:
    """The options of the serving ``crontask run`` that its passes apply to the files and git
    tasks, and so a plan too: ``--max-tasks`` (None: not known, no bound) and
    ``--allow-empty`` (the default of ``allowEmpty``)."""

    max_tasks: int | None = None
    allow_empty: bool = False


def server_options(request: Request) -> ServerOptions:
    found = getattr(request.app.state, OPTIONS_STATE, None)
    return found if isinstance(found, ServerOptions) else ServerOptions()


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class FieldChangeOut(_Out):
    path: str = Field(description="dotted, e.g. `spec.command.args`", examples=["spec.schedule"])
    old: Any = Field(None, description="null when the field is added")
    new: Any = Field(None, description="null when the field is removed")


class PlanStepOut(_Out):
    operation: Operation
    key: str = Field(description="namespace/name", examples=["ops/nightly-backup"])
    location: str = Field(
        description="an add or update: `body:line:col`; a removal: where the task is now"
    )
    changes: list[FieldChangeOut] = Field(
        description="an update's changes, field by field (an http URL shown to admins only "
        "whole: below admin, a change only in its hidden parts is no change); empty for an "
        "add or a removal"
    )


class PlanOut(_Out):
    steps: list[PlanStepOut] = Field(description="adds and updates by key, then removals")
    unchanged: int = Field(description="tasks compared that would stay as they are")
    held_removals: list[str] = Field(
        description="kept: the documents hold no task (`allowEmpty=true` removes them)"
    )
    kept: list[str] = Field(
        description="kept as they are: their new definition has errors, or (an error that "
        "names no task: a syntax error, a bound) every task the documents do not yield"
    )
    problems: list[str] = Field(
        description=f"the documents' errors and conflicts, each `body:line:col: message` (the "
        f"first {MAX_ERRORS}); none: the documents are valid",
        examples=[["body:6:16: spec.schedule: hour field: 25 is out of range 0-23"]],
    )
    more_problems: int = Field(description="how many problems `problems` leaves out")
    summary: str = Field(examples=["1 to add, 1 to change, 0 to remove, 4 unchanged"])


@dataclasses.dataclass(frozen=True, slots=True)
class Posted:
    data: bytes
    as_json: bool  # one CronTask as JSON, read as POST /api/v1/tasks reads one


async def read_documents(request: Request) -> Posted:
    """The posted text, if its type says YAML or JSON (any charset: it must be UTF-8, and a
    byte that is not is a problem at its line, as in a file); a 422 otherwise."""
    message = email.message.Message()
    message["content-type"] = request.headers.get("content-type", "")
    media = message.get_content_type()
    if media not in YAML_TYPES and media != "application/json" and not media.endswith("+json"):
        problem = FieldProblem(location=["header", "Content-Type"], message=SEND)
        raise ProblemError(422, f"body: {SEND}", title="Invalid request", errors=[problem])
    as_json = media == "application/json" or media.endswith("+json")
    return Posted(await request.body(), as_json)


Documents = Annotated[Posted, Depends(read_documents)]
_ALLOW_EMPTY = (
    "as `crontask run --allow-empty`: documents that hold no task remove them all; by "
    "default, as this server was started (true with `--allow-empty`, else false)"
)
# Absent (None) is the server's own default; a sent value is a boolean, never null, and the
# schema says so (it said boolean or null, and `?allowEmpty=null` is a 422).
AllowEmpty = Annotated[
    bool | None,
    WithJsonSchema({"type": "boolean"}),
    Query(alias="allowEmpty", description=_ALLOW_EMPTY),
]
Options = Annotated[ServerOptions, Depends(server_options)]


@router.post(
    "/plan",
    response_model=PlanOut,
    summary="Plan: what these documents would change (a dry run)",
    description="Compares the posted documents with the tasks in force from files and git, as "
    "`crontask plan PATH --server URL` does: adds, changes (field by field) and removals, the "
    "tasks kept, and the documents' problems. API-created and Kubernetes tasks are not "
    "compared, but a key the documents share with one is a conflict, settled as a pass "
    "would settle it. The server's `--max-tasks` bounds the folder's tasks and git's each on "
    "its own, as a pass does: a task in force counts in its own source, a new one in the "
    "folder's (git's when the server reads no folder); past a source's bound its additions "
    "are not planned (a problem names them), its updates and removals are. Changes nothing.",
    openapi_extra={**role_extra("viewer"), **_DOCUMENTS_BODY},
    responses=problem_responses(422),
)
def plan_documents(
    runtime: Runtime,
    documents: Documents,
    exact: Exact,
    options: Options,
    allow_empty: AllowEmpty = None,
) -> PlanOut:
    # A `def`: parsing a 1 MiB text runs in the threadpool, never on the scheduler's loop.
    if not _planning.acquire(blocking=False):
        detail = "another plan is being made; retry in a moment"
        raise ProblemError(503, detail, headers={"Retry-After": "1"})
    try:
        found = planning.plan_text(
            documents.data,
            runtime.in_force(),
            jobs=runtime.runs_jobs(),
            allow_empty=options.allow_empty if allow_empty is None else allow_empty,
            exact=exact,
            max_tasks=options.max_tasks,
            as_json=documents.as_json,
            new_source=_new_source(runtime),
        )
    finally:
        _planning.release()
    return PlanOut(
        steps=[_step_out(step) for step in found.plan.steps],
        unchanged=found.plan.unchanged,
        held_removals=list(found.plan.held_removals),
        kept=list(found.kept),
        problems=list(found.problems[:MAX_ERRORS]),
        more_problems=max(len(found.problems) - MAX_ERRORS, 0),
        summary=found.plan.summary(),
    )


def _new_source(runtime: RuntimeView) -> SourceKind:
    """Where a task not in force would be added, for the bound: the folder when the server
    reads one (git's files are committed, a folder's written, and both read by a pass), else
    git. Neither: the folder's, the bound of a source that holds nothing."""
    kinds = {source.kind for source in runtime.sources()}
    return (
        SourceKind.GIT
        if SourceKind.GIT in kinds and SourceKind.FILE not in kinds
        else SourceKind.FILE
    )


def _step_out(step: Step) -> PlanStepOut:
    updated = step.operation is Operation.UPDATE
    changes = planning.changes_of(step) if updated else []
    return PlanStepOut(
        operation=step.operation,
        key=step.key,
        location=planning.location_of(step),
        changes=[FieldChangeOut(path=c.path, old=c.old, new=c.new) for c in changes],
    )
