"""``/api/v1/sources`` (where definitions come from, and which revision is in force) and
``/api/v1/hooks/git`` (a push webhook asking the git source to fetch now).

The webhook accepts either an operator's bearer token or the ``X-Hub-Signature-256`` header
that GitHub, Gitea and GitLab-compatible senders compute: ``sha256=`` + the hex HMAC-SHA256 of
the raw body with the shared secret (``--git-webhook-secret-file``). The guard checks the
signature before anything else; a bad or missing one is a 401 and a log line. The body (up to
25 MiB, ``door.MAX_HOOK_BODY_BYTES``) is hashed as it arrives and not kept: this route must not
read it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from reconciler.api.auth import role_extra
from reconciler.api.problems import MAX_ERRORS, ProblemError
from reconciler.api.routing import GuardedRoute, Runtime, operation_id, problem_responses
from reconciler.controller.view import SourceStatus
from reconciler.core.desired import SourceKind

router = APIRouter(
    prefix="/api/v1",
    route_class=GuardedRoute,
    tags=["sources"],
    generate_unique_id_function=operation_id,
)

WEBHOOK_SIGNATURE_KEY = "x-webhook-signature"  # openapi_extra: signature accepted instead
# Declared so that the document lists what a body can bring (app.py: 408 late, 413 too large).
_PUSH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "the push event as the sender sends it, of any type; not interpreted "
        "(with `X-Hub-Signature-256`, its bytes are what the signature covers)",
        "content": {"*/*": {"schema": {}}},
    }
}


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class SourceOut(_Out):
    kind: str = Field(
        description="file, git, kubernetes or api; or jobs: the watch of the Jobs of the job "
        "tasks in force, one per namespace they go to (none without such a task)"
    )
    location: str = Field(description="paths, or the repository URL#ref (no credentials)")
    tasks: int = Field(description="definitions in force from it (jobs: tasks whose Jobs go there)")
    errors: int = Field(description="definition errors and conflicts located in this source")
    problems: list[str] = Field(
        default_factory=list,
        description=f"those errors and conflicts, each as `file:line:col: message` (the first "
        f"{MAX_ERRORS}); the same lines as the log and the status page",
        examples=[["tasks/backup.yaml:6:16: spec.schedule: hour field: 25 is out of range 0-23"]],
    )
    more_problems: int = Field(0, description="how many of `errors` `problems` leaves out")
    revision: str | None = Field(None, description="git: the commit SHA in force")
    attempted_revision: str | None = Field(None, description="git: the newest commit tried")
    last_sync: datetime | None = None
    last_attempt: datetime | None = None
    last_error: str | None = Field(
        None, description="why the last sync failed (jobs: why the last list or watch did)"
    )
    failures: int | None = Field(
        None,
        description="jobs: lists and watches failed in a row (0: the watch works; while it "
        "fails, a run's end is seen late, from its Job read at times, not from the watch)",
    )
    failing_since: datetime | None = Field(None, description="jobs: the first of those failures")


class SourceListOut(_Out):
    items: list[SourceOut]


class SyncOut(_Out):
    accepted: bool = Field(
        description="a fetch was requested (made at once, or at the end of the 5 s after the "
        "last one asked for); its result shows in /sources"
    )


@router.get(
    "/sources",
    response_model=SourceListOut,
    response_model_by_alias=True,
    summary="List sources with their revision and sync state",
    openapi_extra=role_extra("viewer"),
    responses=problem_responses(422, 500),
)
def list_sources(runtime: Runtime) -> SourceListOut:
    watches = [_watch_out(s) for s in runtime.job_watches()]
    return SourceListOut(items=[*(_source_out(s) for s in runtime.sources()), *watches])


def _source_out(s: SourceStatus) -> SourceOut:
    # A task that never validated has no task view: its source's list is where the API shows
    # its error. The lines are written to be shown (excerpts of the text, no URL secrets), as
    # a flagged task's `error` and the status page's /sources show them to viewers.
    shown = list(s.problems[:MAX_ERRORS])
    return SourceOut(
        kind=s.kind,
        location=s.location,
        tasks=s.tasks,
        errors=s.errors,
        problems=shown,
        more_problems=max(s.errors - len(shown), 0),
        revision=s.revision,
        attempted_revision=s.attempted_revision,
        last_sync=s.last_sync,
        last_attempt=s.last_attempt,
        last_error=s.last_error,
    )


def _watch_out(s: SourceStatus) -> SourceOut:
    # No definitions come from a Job watch: no problems, no revision; its failures are in a
    # row (since when), where a pulling source's count since the start is the metrics'.
    out = _source_out(s)
    return out.model_copy(update={"failures": s.sync_failures, "failing_since": s.failing_since})


@router.post(
    "/hooks/git",
    status_code=202,
    response_model=SyncOut,
    summary="Fetch the git source now (push webhook)",
    description="Authenticated by an operator's bearer token, or by `X-Hub-Signature-256` "
    "(HMAC-SHA256 of the body with the webhook secret). The body is not interpreted: any "
    "push means 'fetch now'; but within 5 s of the end of the last fetch asked for this way, "
    "'fetch when those 5 s are over' (however many ask meanwhile, one fetch then, of the newest "
    "push: a delivery replayed does not make fetch after fetch). 404 if crontask has no git "
    "source. The body may be up to 25 MiB (GitHub's cap on a delivery); a request with "
    "neither a well-formed `X-Hub-Signature-256` (`sha256=` and 64 hex digits) nor a bearer "
    "token is refused before its body is read.",
    openapi_extra={**role_extra("operator"), WEBHOOK_SIGNATURE_KEY: True, **_PUSH_BODY},
    responses=problem_responses(404, 422, 500),
)
def git_hook(runtime: Runtime) -> SyncOut:
    if not runtime.sync_now(SourceKind.GIT):
        raise ProblemError(404, "crontask was started without a git source (--git)")
    return SyncOut(accepted=True)
