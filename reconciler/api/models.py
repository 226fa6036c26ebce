"""The JSON the API answers with, as pydantic models (so the OpenAPI document is exact).

Field names are camelCase on the wire (``scheduledTime``, ``nextRuns``); every datetime is
RFC 3339 with an offset: run times in UTC (``Z``), a task's next runs in the task's own zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from reconciler.api.problems import Problem
from reconciler.controller.view import TaskView
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.core.urls import redact_request_url

TaskState = Literal["Ready", "Error", "Suspended"]

CRONTASK_SCHEMA_REF = "#/components/schemas/CronTask"


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class SourceRefOut(_Out):
    """Where the task's definition comes from (named apart from ``routes_sources.SourceOut``,
    a source of the list: two models of one name get module paths as schema names)."""

    kind: str = Field(description="file, git, kubernetes or api", examples=["file"])
    location: str = Field(description="path:line:col of a file, namespace/name of a resource")
    revision: str | None = Field(description="the commit of a git source")


class RunOut(_Out):
    """One attempt of one run."""

    id: str = Field(examples=["ops.nightly-backup.20261127T010000Z"])
    task: str = Field(description="namespace/name")
    attempt: int = Field(ge=1)
    trigger: Trigger
    status: RunStatus
    reason: str | None = Field(
        description="why, in CamelCase: ConcurrencyForbid, DeadlineExceeded, ..."
    )
    message: str | None
    scheduled_time: datetime = Field(description="the slot (RFC 3339, UTC)")
    start_time: datetime | None
    completion_time: datetime | None
    duration_ms: int | None
    exit_code: int | None

    @classmethod
    def of(cls, r: RunRecord) -> RunOut:
        return cls(**_run_fields(r))


class TriggeredRunOut(RunOut):
    """The answer to a run asked for now: its record, or, decided but not started yet (it waits
    for the run it replaces to stop), ``pending`` (``api.run_decision.decided``), which no record
    says: alone, nothing of it is recorded yet; with replicas, its claim says ``running``."""

    # Wider than RunOut's: mypy refuses a field widened in a subclass; pydantic takes it,
    # and the schema of this answer says both.
    status: RunStatus | Literal["pending"] = Field(  # type: ignore[assignment]
        description="a run's status, or pending: not started yet (see message)"
    )

    @classmethod
    def of(cls, r: RunRecord) -> TriggeredRunOut:
        return cls(**_run_fields(r))

    @classmethod
    def pending(cls, r: RunRecord, why: str) -> TriggeredRunOut:
        # Not started: no start time (the record's is when it was decided).
        return cls(**{**_run_fields(r), "status": "pending", "start_time": None, "message": why})


class RunAttemptOut(RunOut):
    """One attempt with its output (the tail of stdout and stderr)."""

    output: str
    job: dict[str, Any] | None = Field(
        None,
        description="a job task's Kubernetes Job: namespace, name, uid, pod, node, containers "
        "(name, exitCode, reason), startedAt, completedAt, logError (why the log is missing)",
    )

    @classmethod
    def of(cls, r: RunRecord) -> RunAttemptOut:
        job = _camel_keys(r.job.to_json()) if r.job else None
        return cls(**_run_fields(r), output=r.output, job=job)


def _camel_keys(value: Any) -> Any:
    """The stored job details (snake_case, as the store keeps them) in the API's spelling."""
    if isinstance(value, dict):
        return {to_camel(k): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def _run_fields(r: RunRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "task": r.task,
        "attempt": r.attempt,
        "trigger": r.trigger,
        "status": r.status,
        "reason": r.reason,
        "message": r.message,
        "scheduled_time": r.scheduled_at,
        "start_time": r.started_at,
        "completion_time": r.finished_at,
        "duration_ms": r.duration_ms,
        "exit_code": r.exit_code,
    }


class RunDetailOut(_Out):
    """A run: every attempt, oldest first, with output."""

    id: str
    task: str
    attempts: list[RunAttemptOut] = Field(min_length=1)


class ListMeta(BaseModel):
    """A list's metadata, as Kubernetes lists have it."""

    model_config = ConfigDict(populate_by_name=True)

    continue_: str | None = Field(
        None,
        alias="continue",
        description="pass as `continue` (with the same filters) for the next page; "
        "null on the last page. Opaque.",
    )


class RunListOut(_Out):
    metadata: ListMeta
    items: list[RunOut]
    next_cursor: str | None = Field(
        description="deprecated: the same token as `metadata.continue`", deprecated=True
    )


class TaskOut(_Out):
    """A task as the reconciler runs it."""

    key: str = Field(description="namespace/name", examples=["ops/nightly-backup"])
    resource_version: str | None = Field(
        None,
        description="an API-owned task's version, also its ETag (send it back in If-Match); "
        "null for tasks of other sources, and for a caller below admin (a digest of the stored "
        "text, which holds what such a caller is not shown)",
    )
    resource: dict[str, Any] = Field(
        description="the CronTask document in force (its last good definition); for a caller "
        "below admin, an http action's URL is shown as run messages show it (no user name, "
        "password, path or query values)"
    )
    source: SourceRefOut
    state: TaskState = Field(
        description="Suspended; Error (a definition problem: the last good one runs); or Ready"
    )
    error: str | None = Field(description="the current definition error or conflict")
    suspended: bool
    running: list[str] = Field(description="ids of the runs in progress")
    next_runs: list[datetime] = Field(description="next fire times, RFC 3339 in the task's zone")
    last_run: RunOut | None
    owner: str | None = Field(
        None, description="with replicas (--ha): the instance that schedules it; else null"
    )

    @classmethod
    def of(cls, view: TaskView, *, exact: bool) -> TaskOut:
        """``exact``: the resource as it is, and its version, for a caller who may change the
        task (what it reads, it can PUT back unchanged); else as :func:`for_readers` shows it,
        without a version."""
        return cls(
            key=view.key,
            # A digest of the stored text (URL whole), checkable against guesses: writers only.
            resource_version=view.version if exact else None,
            resource=dict(view.resource) if exact else for_readers(view.resource),
            source=SourceRefOut(
                kind=view.source.kind,
                location=view.source.location,
                revision=view.source.revision,
            ),
            state=_state(view.state),
            error=view.error,
            suspended=view.suspended,
            running=list(view.running),
            next_runs=list(view.next_runs),
            last_run=RunOut.of(view.last_run) if view.last_run else None,
            owner=view.owner,
        )


def for_readers(resource: Mapping[str, Any]) -> dict[str, Any]:
    """``resource`` as a caller who may only read it sees it: an http action's URL as run
    messages show it (no user name, password, path or query values: they are where a URL
    carries its secrets, a webhook's in its path), the rest as it is."""
    spec = resource.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(http := spec.get("http"), Mapping):
        return dict(resource)
    if not isinstance(url := http.get("url"), str):
        return dict(resource)
    shown = {**http, "url": redact_request_url(url)}
    return {**resource, "spec": {**spec, "http": shown}}


def _state(value: str) -> TaskState:
    if value == "Suspended":
        return "Suspended"
    return "Error" if value == "Error" else "Ready"


class TaskListOut(_Out):
    metadata: ListMeta
    items: list[TaskOut]


class ReadinessOut(_Out):
    ready: bool
    checks: dict[str, bool] = Field(examples=[{"sources": True, "scheduler": True, "store": True}])


class ReadinessProblem(Problem):
    """The 503 of ``/readyz``: a problem that also lists the checks."""

    ready: Literal[False] = False
    checks: dict[str, bool]


class HealthOut(_Out):
    status: Literal["ok"] = "ok"


def tasks_out(views: Iterable[TaskView], *, exact: bool) -> list[TaskOut]:
    return [TaskOut.of(v, exact=exact) for v in sorted(views, key=lambda v: v.key)]


def runs_out(records: Sequence[RunRecord]) -> list[RunOut]:
    return [RunOut.of(r) for r in records]
