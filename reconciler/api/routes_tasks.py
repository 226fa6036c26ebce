"""``/api/v1/tasks``: read every task; create, replace and delete the API-owned ones.

A task defined by another source (a file, git, a custom resource) is read-only here: changing
it answers 409 naming where to change it. Endpoints are ``def``: FastAPI runs them in its
threadpool, so a slow runtime or store call never blocks the event loop the scheduler shares.

An API-owned task has a resource version, sent as a strong ``ETag`` (and as
``resourceVersion`` in the body, beside the resource: not inside ``resource.metadata``, which
must round-trip through ``PUT`` and whose schema has no such field). ``PUT`` and ``DELETE``
honour ``If-Match``: a version that has moved on is a 412, so a lost update is never silent.
``PUT`` honours ``If-None-Match: *`` (create only: 412 if the task exists, as the store's own
create check says, so two such writers never both win); entity tags there are not looked at.
``DELETE`` honours ``If-None-Match`` whole (RFC 9110 §13.1.2): ``*`` while the task exists,
or a list naming its version (weak comparison), is a 412 and nothing is deleted; the delete is
of the version the condition was checked against, so a task written meanwhile is a 412 too.
Only a caller who may write tasks is sent the version: it is a digest of the stored text, which
holds what the others are not shown (an http action's URL whole), and a digest can be checked
against guesses offline.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from reconciler.api.auth import RequiredRole, Role, role_extra
from reconciler.api.models import (
    CRONTASK_SCHEMA_REF,
    ListMeta,
    TaskListOut,
    TaskOut,
    TaskState,
    TriggeredRunOut,
)
from reconciler.api.params import (
    NOT_ISSUED,
    TASKS_PAGE_BYTES,
    TASKS_PAGE_DEFAULT,
    TASKS_PAGE_MAX,
    ContinueQuery,
    DocumentBody,
    IfMatchHeader,
    IfNoneMatchHeader,
    IfNoneMatchTags,
    InvalidToken,
    Name,
    Namespace,
    NamespaceQuery,
    SourceKindQuery,
    decode_task_token,
    encode_task_token,
    within_bytes,
)
from reconciler.api.problems import (
    MAX_ERRORS,
    FieldProblem,
    Problem,
    ProblemError,
)
from reconciler.api.routing import (
    ROLE_SCOPE_KEY,
    GuardedRoute,
    Runtime,
    links,
    operation_id,
    problem_responses,
)
from reconciler.api.run_decision import decided, scheduler_unanswered
from reconciler.api.task_problems import (
    creates_only,
    deletable,
    if_match_versions,
    invalid,
    not_found,
    refused,
)
from reconciler.controller.view import (
    AlreadyExists,
    FieldError,
    IfMatch,
    InvalidDefinition,
    RuntimeView,
    TaskQuery,
    TaskView,
)
from reconciler.core.api_tasks import (
    MAX_TASKS,
    MAX_TOTAL_BYTES,
)
from reconciler.core.model import CronTask
from reconciler.core.schedule.cronjob import cronjob_difference
from reconciler.sources.api import MAX_TEXT
from reconciler.sources.limits import format_size
from reconciler.sources.messages import problems

router = APIRouter(
    prefix="/api/v1",
    route_class=GuardedRoute,
    tags=["tasks"],
    generate_unique_id_function=operation_id,
)

WRITER: Final[RequiredRole] = "admin"  # who may create, replace and delete tasks

_DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a CronTask resource; a key given twice in one object is a 422",
        "content": {"application/json": {"schema": {"$ref": CRONTASK_SCHEMA_REF}}},
    }
}
Document = DocumentBody  # read off the loop, as strictly as a task file (api.params)

# Where a task's key is in each answer, for the OpenAPI links between operations.
_FROM_BODY: Final = {
    "namespace": "$response.body#/resource/metadata/namespace",
    "name": "$response.body#/resource/metadata/name",
}
_FROM_PATH: Final = {"namespace": "$request.path.namespace", "name": "$request.path.name"}
_VERSIONED: Final = {**_FROM_PATH, "header.If-Match": "$response.header.ETag"}
_TOO_LARGE: Final[dict[int | str, dict[str, Any]]] = {
    413: {
        "model": Problem,
        "description": f"The body, or the task as stored YAML, is larger than "
        f"{format_size(MAX_TEXT)}; nothing is stored",
    },
    507: {
        "model": Problem,
        "description": f"The API holds {MAX_TASKS} tasks, or its tasks would take more than "
        f"{format_size(MAX_TOTAL_BYTES)} as stored YAML; nothing is stored",
    },
}
_ETAG: Final = {
    "headers": {
        "ETag": {
            "description": "an API-owned task's version (strong), for If-Match; sent only "
            "to a caller who may write tasks (admin)",
            "schema": {"type": "string"},
        }
    }
}
_LOCATION: Final = {"description": "the path of what was made", "schema": {"type": "string"}}
_WRITTEN: Final = {  # the answer to a write of a task
    "headers": {
        **_ETAG["headers"],
        "Warning": {
            "description": '`299 - "..."`: the task is stored and runs, but a Kubernetes '
            "CronJob would read its schedule to other days (a weekday step `N/step`)",
            "schema": {"type": "string"},
        },
    }
}
_CREATED: Final = {"headers": {**_WRITTEN["headers"], "Location": _LOCATION}}


def _may_write(request: Request) -> bool:
    """Whether the caller may write tasks, and so reads them exactly: a GET's resource must
    PUT back unchanged. Others read an http action's URL without its secrets (a viewer or an
    operator may see and run the task, not learn its credentials)."""
    role = request.scope.get(ROLE_SCOPE_KEY)
    return isinstance(role, Role) and role.allows(Role(WRITER))


Exact = Annotated[bool, Depends(_may_write)]


@router.get(
    "/tasks",
    response_model=TaskListOut,
    summary="List tasks, sorted by key",
    description=f"At most `limit` tasks a page (default {TASKS_PAGE_DEFAULT}, at most "
    f"{TASKS_PAGE_MAX}). While more follow, `metadata.continue` is a token: pass it as "
    "`continue` with the same filters for the next page (null on the last page). Paging is "
    "stable: a page starts after the last key of the previous one. A page of large tasks "
    f"ends early, after about {format_size(TASKS_PAGE_BYTES)} of resources.",
    openapi_extra=role_extra("viewer"),
    responses=problem_responses(422),
)
def list_tasks(
    runtime: Runtime,
    namespace: NamespaceQuery = None,
    source: SourceKindQuery = None,
    state: Annotated[TaskState | None, Query(description="only tasks in this state")] = None,
    limit: Annotated[
        int, Query(ge=1, le=TASKS_PAGE_MAX, description=f"page size, at most {TASKS_PAGE_MAX}")
    ] = TASKS_PAGE_DEFAULT,
    continue_: ContinueQuery = None,
    *,
    exact: Exact,
) -> TaskListOut:
    after = None
    if continue_ is not None:
        try:
            after = decode_task_token(continue_)
        except InvalidToken:
            problem = FieldProblem(location=["query", "continue"], message=NOT_ISSUED)
            raise ProblemError(
                422, f"query.continue: {NOT_ISSUED}", title="Invalid request", errors=[problem]
            ) from None
    query = TaskQuery(namespace=namespace, source=source, state=state, after=after)
    views = runtime.tasks(dataclasses.replace(query, limit=limit + 1))
    shown = within_bytes(views[:limit], _resource_bytes, TASKS_PAGE_BYTES)
    token = encode_task_token(views[shown - 1].key) if len(views) > shown else None
    return TaskListOut(
        metadata=ListMeta(continue_=token),
        items=[TaskOut.of(v, exact=exact) for v in views[:shown]],
    )


def _resource_bytes(view: TaskView) -> int:
    return len(json.dumps(view.resource, ensure_ascii=False, separators=(",", ":")))


@router.get(
    "/tasks/{namespace}/{name}",
    response_model=TaskOut,
    summary="Get one task",
    description="An API-owned task's answer carries its version as `ETag` for a caller who may "
    "write tasks (admin).",
    openapi_extra={
        **role_extra("viewer"),
        **links(
            (200,),
            ReplaceTaskIfUnchanged=("put_task", _VERSIONED),
            DeleteTaskIfUnchanged=("delete_task", _VERSIONED),
            StartRun=("trigger_run", _FROM_PATH),
        ),
    },
    responses={200: _ETAG, **problem_responses(404, 422)},
)
def get_task(
    runtime: Runtime, namespace: Namespace, name: Name, response: Response, exact: Exact
) -> TaskOut:
    view = runtime.task(f"{namespace}/{name}")
    if view is None:
        raise not_found(namespace, name, _definition_errors(runtime))
    return _answer(view, response, exact=exact)


@router.post(
    "/tasks",
    response_model=TaskOut,
    status_code=201,
    summary="Create an API-owned task",
    description="409 if a task with this namespace/name exists (from any source), also when "
    "another request creates it first.",
    openapi_extra={
        **role_extra(WRITER),
        **_DOCUMENT_BODY,
        **links(
            (201,),
            GetTask=("get_task", _FROM_BODY),
            ReplaceTask=("put_task", _FROM_BODY),
            DeleteTask=("delete_task", _FROM_BODY),
            StartRun=("trigger_run", _FROM_BODY),
        ),
    },
    responses={201: _CREATED, **problem_responses(409, 422), **_TOO_LARGE},
)
def create_task(runtime: Runtime, document: Document, response: Response) -> TaskOut:
    task = _validated(document)  # the one validation: the runtime takes the model
    try:
        with refused():
            view = runtime.create_api_task(task)
    except AlreadyExists as exc:
        raise ProblemError(409, str(exc), kind="already-exists") from None
    response.headers["Location"] = f"/api/v1/tasks/{view.key}"
    _warn_of(task, response)
    return _answer(view, response, exact=True)  # a writer's


@router.put(
    "/tasks/{namespace}/{name}",
    response_model=TaskOut,
    summary="Create or replace an API-owned task",
    description="200 when replaced, 201 when created. The body's metadata.namespace and "
    "metadata.name must match the path (a missing namespace is taken from the path); "
    "409 if the task is defined by another source, or if what is stored in its place is not "
    "crontask's to replace (the problem says what to remove); with `If-Match`, 412 if the task "
    "is not at one of the versions given; with `If-None-Match: *`, 412 if the task exists.",
    openapi_extra={
        **role_extra(WRITER),
        **_DOCUMENT_BODY,
        **links(
            (200, 201),
            GetTask=("get_task", _FROM_PATH),
            ReplaceTaskIfUnchanged=("put_task", _VERSIONED),
            DeleteTaskIfUnchanged=("delete_task", _VERSIONED),
        ),
    },
    responses={
        200: _WRITTEN,
        201: {"model": TaskOut, "description": "Created", **_CREATED},
        **problem_responses(409, 412, 422),
        **_TOO_LARGE,
    },
)
def put_task(
    runtime: Runtime,
    namespace: Namespace,
    name: Name,
    document: Document,
    response: Response,
    if_match: IfMatchHeader = None,
    if_none_match: IfNoneMatchHeader = None,
) -> TaskOut:
    metadata = document.get("metadata")
    if isinstance(metadata, dict) and "namespace" not in metadata:
        document = {**document, "metadata": {**metadata, "namespace": namespace}}
    task = _validated(document)
    mismatched = [
        FieldProblem(
            location=["body", "metadata", field],
            message=f"{got!r} does not match the path's {want!r}",
        )
        for field, got, want in (
            ("namespace", task.metadata.namespace, namespace),
            ("name", task.metadata.name, name),
        )
        if got != want
    ]
    if mismatched:
        raise ProblemError(
            422,
            f"the body names {task.key}, the path {namespace}/{name}",
            title="Invalid request",
            errors=mismatched,
        )
    versions = if_match_versions(if_match)
    if creates_only(if_none_match):
        view, created = _create_only(runtime, task, versions), True
    else:
        with refused():
            view, created = runtime.put_api_task(task, if_match=versions)
    if created:
        response.status_code = 201
        response.headers["Location"] = f"/api/v1/tasks/{view.key}"
    _warn_of(task, response)
    return _answer(view, response, exact=True)  # a writer's


@router.delete(
    "/tasks/{namespace}/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete an API-owned task",
    description="409 if the task is defined by another source: delete it there; or if what is "
    "stored in its place is not crontask's to remove (the problem says what to remove). With "
    "`If-Match`, 412 if the task is not at one of the versions given; with `If-None-Match`, "
    "412 if it exists (`*`) or is at one of the versions given.",
    openapi_extra=role_extra(WRITER),
    responses=problem_responses(404, 409, 412, 422),
)
def delete_task(
    runtime: Runtime,
    namespace: Namespace,
    name: Name,
    unless: IfNoneMatchTags,
    if_match: IfMatchHeader = None,
) -> Response:
    key = f"{namespace}/{name}"
    versions = if_match_versions(if_match)
    if unless is not None:
        versions = deletable(runtime.task(key), versions, unless)
    try:
        with refused():
            runtime.delete_api_task(key, if_match=versions)
    except KeyError:
        raise not_found(namespace, name) from None
    return Response(status_code=204)


@router.post(
    "/tasks/{namespace}/{name}/runs",
    response_model=TriggeredRunOut,
    status_code=202,
    summary="Start a run now",
    description="202 with the run record: `status` is `running` when it started, or "
    "`skipped` with a `reason` (e.g. `ConcurrencyForbid` while a run is going and the task's "
    "concurrencyPolicy is Forbid) and a `message` saying why. Under Replace, a run that "
    "replaces one going here starts once that one has stopped (a command: within the kill "
    "grace; a Job: once it is deleted), and the answer waits for that (up to 5 s), with or "
    "without replicas: `skipped` (`ReplaceBlocked`) if the Job's delete was refused, "
    "`pending` (not started, no `startTime`, a `message` saying what it waits for) while it "
    "still waits: the run then starts, or, a Job's, is recorded skipped within 60 s. Without "
    "replicas a pending run has no record yet (its `Location` answers 404); with them, its "
    "claim says `running`. With replicas (`--ha`) the "
    "answer waits for the shared store's check (up to 5 s), as a run of the task may be going "
    "on another replica; 503 `run-undecided` if the store does not answer under Forbid or "
    "Replace (the run is then recorded `skipped`, `StoreUnavailable`, unless the store takes "
    "its claim), or if the scheduler did not take the run in time (it may still start): look "
    "before asking again. 503 `not-started`, with nothing run or recorded, while this replica "
    "may not start runs (its membership not renewed in time, or crontask stopping): ask again "
    "after `Retry-After`.",
    openapi_extra={
        **role_extra("operator"),
        **links((202,), GetRun=("get_run", {"run_id": "$response.body#/id"})),
    },
    responses={202: {"headers": {"Location": _LOCATION}}, **problem_responses(404, 422, 503)},
)
def trigger_run(
    runtime: Runtime, namespace: Namespace, name: Name, response: Response
) -> TriggeredRunOut:
    try:
        record, pending = decided(runtime, runtime.trigger(f"{namespace}/{name}"))
    except KeyError:
        raise not_found(namespace, name, _definition_errors(runtime)) from None
    except TimeoutError:
        raise scheduler_unanswered(f"{namespace}/{name}") from None
    response.headers["Location"] = f"/api/v1/runs/{record.id}"
    if pending is not None:
        return TriggeredRunOut.pending(record, pending)
    return TriggeredRunOut.of(record)


def _create_only(runtime: Runtime, task: CronTask, if_match: IfMatch | None) -> TaskView:
    """A PUT with ``If-None-Match: *``: a create, whose refusal for an existing task is the
    412 of a failed precondition. With ``If-Match`` too nothing can pass: that needs a task,
    this none."""
    if if_match is None:
        try:
            with refused():
                return runtime.create_api_task(task)
        except AlreadyExists:
            pass  # the store's own check: of two such writes, one creates, the other is this
    said = "already exists" if if_match is None else "cannot also match If-Match"
    detail = f"If-None-Match: * creates only, and task {task.key} {said}"
    raise ProblemError(412, detail, kind="version-mismatch", title="Precondition Failed")


def _validated(document: dict[str, Any]) -> CronTask:
    try:
        return CronTask.model_validate(document)
    except ValidationError as exc:
        found, more = problems(exc, MAX_ERRORS)
        errors = [FieldError(location=p.loc, message=p.message) for p in found]
        raise invalid(InvalidDefinition(errors), more) from None


def _warn_of(task: CronTask, response: Response) -> None:
    """A written task that a Kubernetes CronJob would run on other days is accepted with a
    ``Warning`` header, as the Kubernetes API server answers with its warnings (``kubectl``
    prints them). Its text is words and the weekday field, which parsed: ASCII letters, digits
    and signs, no double quote (the schedule's whitespace may be any, so it is not quoted
    whole). Checked all the same: a header that cannot be sent fails the answer after the
    write, and the caller would take a stored task for a failed write."""
    why = cronjob_difference(task.spec.schedule)
    if why is not None and why.isascii() and why.isprintable() and '"' not in why:
        response.headers["Warning"] = f'299 - "{why}"'


def _answer(view: TaskView, response: Response, *, exact: bool) -> TaskOut:
    """``view``, and its version as ETag for a caller who may write it (see the module)."""
    if exact and view.version is not None:
        response.headers["ETag"] = f'"{view.version}"'
    return TaskOut.of(view, exact=exact)


def _definition_errors(runtime: RuntimeView) -> int:
    return sum(source.errors for source in runtime.sources())
