"""``/api/v1/tasks``: read every task; create, replace and delete the API-owned ones.

A task defined by another source (a file, git, a custom resource) is read-only here: changing
it answers 409 naming where to change it. Endpoints are ``def``: FastAPI runs them in its
threadpool, so a slow runtime or store call never blocks the event loop the scheduler shares.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import ValidationError

from reconciler.api.auth import role_extra
from reconciler.api.models import (
    CRONTASK_SCHEMA_REF,
    RunOut,
    TaskListOut,
    TaskOut,
    TaskState,
    field_errors,
    tasks_out,
)
from reconciler.api.problems import FieldProblem, ProblemError, field_problems
from reconciler.api.routing import GuardedRoute, Runtime, operation_id, problem_responses
from reconciler.controller.view import InvalidDefinition, OwnedElsewhere, TaskView
from reconciler.core.model import CronTask

router = APIRouter(
    prefix="/api/v1",
    route_class=GuardedRoute,
    tags=["tasks"],
    generate_unique_id_function=operation_id,
)

Namespace = Annotated[str, Path(description="the task's namespace", examples=["default"])]
Name = Annotated[str, Path(description="the task's name", examples=["hello"])]

_DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": CRONTASK_SCHEMA_REF}}},
    }
}
Document = Annotated[dict[str, Any], Body(description="a CronTask resource")]


@router.get(
    "/tasks",
    response_model=TaskListOut,
    summary="List tasks",
    openapi_extra=role_extra("viewer"),
    responses=problem_responses(422),
)
def list_tasks(
    runtime: Runtime,
    namespace: Annotated[str | None, Query(description="only this namespace")] = None,
    source: Annotated[
        str | None, Query(description="only tasks from this kind of source: file, git, api, ...")
    ] = None,
    state: Annotated[TaskState | None, Query(description="only tasks in this state")] = None,
) -> TaskListOut:
    views = [
        v
        for v in runtime.tasks()
        if (namespace is None or v.key.partition("/")[0] == namespace)
        and (source is None or v.source.kind == source)
        and (state is None or v.state == state)
    ]
    return TaskListOut(items=tasks_out(views))


@router.get(
    "/tasks/{namespace}/{name}",
    response_model=TaskOut,
    summary="Get one task",
    openapi_extra=role_extra("viewer"),
    responses=problem_responses(404, 422),
)
def get_task(runtime: Runtime, namespace: Namespace, name: Name) -> TaskOut:
    view = runtime.task(f"{namespace}/{name}")
    if view is None:
        raise _not_found(namespace, name)
    return TaskOut.of(view)


@router.post(
    "/tasks",
    response_model=TaskOut,
    status_code=201,
    summary="Create an API-owned task",
    description="409 if a task with this namespace/name exists (from any source).",
    openapi_extra={**role_extra("admin"), **_DOCUMENT_BODY},
    responses=problem_responses(409, 422),
)
def create_task(runtime: Runtime, document: Document, response: Response) -> TaskOut:
    task = _validated(document)
    existing = runtime.task(task.key)
    if existing is not None:
        if existing.source.kind != "api":
            raise _owned_elsewhere(OwnedElsewhere(task.key, existing.source))
        raise ProblemError(
            409,
            f"task {task.key} already exists; PUT /api/v1/tasks/{task.key} replaces it",
            kind="already-exists",
        )
    view, _created = _put(runtime, document)
    response.headers["Location"] = f"/api/v1/tasks/{view.key}"
    return TaskOut.of(view)


@router.put(
    "/tasks/{namespace}/{name}",
    response_model=TaskOut,
    summary="Create or replace an API-owned task",
    description="200 when replaced, 201 when created. The body's metadata.namespace and "
    "metadata.name must match the path (a missing namespace is taken from the path); "
    "409 if the task is defined by another source.",
    openapi_extra={**role_extra("admin"), **_DOCUMENT_BODY},
    responses={201: {"model": TaskOut, "description": "Created"}, **problem_responses(409, 422)},
)
def put_task(
    runtime: Runtime, namespace: Namespace, name: Name, document: Document, response: Response
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
    view, created = _put(runtime, document)
    if created:
        response.status_code = 201
        response.headers["Location"] = f"/api/v1/tasks/{view.key}"
    return TaskOut.of(view)


@router.delete(
    "/tasks/{namespace}/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete an API-owned task",
    description="409 if the task is defined by another source: delete it there.",
    openapi_extra=role_extra("admin"),
    responses=problem_responses(404, 409, 422),
)
def delete_task(runtime: Runtime, namespace: Namespace, name: Name) -> Response:
    try:
        runtime.delete_api_task(f"{namespace}/{name}")
    except KeyError:
        raise _not_found(namespace, name) from None
    except OwnedElsewhere as exc:
        raise _owned_elsewhere(exc) from None
    return Response(status_code=204)


@router.post(
    "/tasks/{namespace}/{name}/runs",
    response_model=RunOut,
    status_code=202,
    summary="Start a run now",
    description="Always 202 with the run record: `status` is `running` when it started, or "
    "`skipped` with a `reason` (e.g. `ConcurrencyForbid` while a run is going and the task's "
    "concurrencyPolicy is Forbid) and a `message` saying why.",
    openapi_extra=role_extra("operator"),
    responses=problem_responses(404, 422),
)
def trigger_run(runtime: Runtime, namespace: Namespace, name: Name, response: Response) -> RunOut:
    try:
        record = runtime.trigger(f"{namespace}/{name}")
    except KeyError:
        raise _not_found(namespace, name) from None
    response.headers["Location"] = f"/api/v1/runs/{record.id}"
    return RunOut.of(record)


def _validated(document: dict[str, Any]) -> CronTask:
    try:
        return CronTask.model_validate(document)
    except ValidationError as exc:
        raise _invalid(InvalidDefinition(field_errors(exc))) from None


def _put(runtime: Runtime, document: dict[str, Any]) -> tuple[TaskView, bool]:
    try:
        return runtime.put_api_task(document)
    except InvalidDefinition as exc:
        raise _invalid(exc) from None
    except OwnedElsewhere as exc:
        raise _owned_elsewhere(exc) from None


def _invalid(exc: InvalidDefinition) -> ProblemError:
    return ProblemError(
        422,
        str(exc) or "the CronTask does not validate",
        kind="invalid-definition",
        title="Invalid CronTask",
        errors=field_problems(exc.errors),
    )


def _owned_elsewhere(exc: OwnedElsewhere) -> ProblemError:
    return ProblemError(409, str(exc), kind="owned-elsewhere", title="Defined by another source")


def _not_found(namespace: str, name: str) -> ProblemError:
    return ProblemError(404, f"no task {namespace}/{name}")
