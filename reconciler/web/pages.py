"""The routes of the status page: tasks, one task, one run, sources, sign-in, assets.

Every route is a :class:`~reconciler.web.session.PageRoute` that declares its role (``viewer``
reads, ``operator`` may press Run now; sign-in and assets are public). Endpoints that read the
run store are ``def``: FastAPI runs them in its thread pool, never on the event loop the
scheduler shares. Nothing here changes a task: the one action is a manual run, which the API
offers operators too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from reconciler import __version__
from reconciler.api.auth import PUBLIC, AuthFailed, Role, role_extra
from reconciler.api.hosts import same_origin
from reconciler.api.params import KEY_PATTERN, Name, Namespace, RunId
from reconciler.api.problems import ProblemError
from reconciler.api.routing import Runtime, context, warn_auth_failed
from reconciler.api.run_decision import decision, scheduler_unanswered
from reconciler.core.desired import SourceKind
from reconciler.core.runs import DNS1123_LABEL, RunStatus
from reconciler.sources.limits import excerpt
from reconciler.store import StoreUnavailable
from reconciler.store.query import MAX_PAGE_SIZE
from reconciler.visible import escaped
from reconciler.web import views
from reconciler.web.banner import definition_errors
from reconciler.web.banner import problem_count as problem_count  # where it was
from reconciler.web.definition import definition_text, shown
from reconciler.web.session import (
    CREDENTIAL_MAX,
    CSRF_FIELD,
    NEXT_MAX,
    PageRoute,
    base_of,
    clear_session,
    form_of,
    local_path,
    session_of,
    set_session,
)
from reconciler.web.timeline import timeline

log = logging.getLogger("crontask.web")

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
ASSETS: Final = {
    "crontask.css": "text/css",
    "crontask.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
# Read at import, as the templates are: the old process's pages keep the old script.
_ASSET_BODIES: Final = {
    n: (resources.files("reconciler.web") / "static" / n).read_bytes() for n in ASSETS
}
REFRESH_SECONDS: Final = 5
RETRY_AFTER: Final = 5  # seconds, as the API's 503 says (``api.problems``)
_LABEL: Final = re.compile(DNS1123_LABEL)
_SOURCE_KINDS: Final = tuple(SourceKind)  # what the API's ``source`` takes, in its order


class _Page(PageRoute):
    """A page route whose refusals a person's browser gets as a page: a filter of an unknown
    value (``/?state=bogus``) or a run id of another shape was a JSON problem on the screen,
    as was a page while the run store was down (``StoreUnavailable``) or the scheduler's loop
    did not answer in time (``TimeoutError``): those are the 503 page, with Retry-After.
    A client that does not ask for HTML (the page's own refresh, a script) gets the problem."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def shown(request: Request) -> Response:
            try:
                return await handler(request)
            except (ProblemError, RequestValidationError, StoreUnavailable, TimeoutError) as err:
                if not _wants_a_page(request):
                    raise  # the API's handlers answer (and log) it
                refused = _as_problem(request, err)
                status, detail = _said(refused)
                title = HTTPStatus(status).phrase
                page = render(request, "problem.html", status, title=title, detail=detail)
                if isinstance(refused, ProblemError):
                    page.headers.update(refused.headers)  # Retry-After, WWW-Authenticate
                return page

        return shown


def _as_problem(
    request: Request, err: ProblemError | RequestValidationError | StoreUnavailable | TimeoutError
) -> ProblemError | RequestValidationError:
    """A store that does not answer, or a loop that did not in time, as the API says it (503,
    Retry-After: ``api.problems``), logged as the API logs it."""
    if isinstance(err, StoreUnavailable | TimeoutError):
        what = "run store unavailable" if isinstance(err, StoreUnavailable) else "timed out"
        log.warning(what, extra={"fields": {"path": request.url.path, "error": str(err)}})
        detail = (
            "the run store is temporarily unavailable; retry later"
            if isinstance(err, StoreUnavailable)
            else "crontask did not answer in time (a busy scheduler); retry later"
        )
        return ProblemError(503, detail, headers={"Retry-After": str(RETRY_AFTER)})
    return err


def _wants_a_page(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not _refresh(request)


def _refresh(request: Request) -> bool:
    """Whether the page's script asks, to refresh the live regions of a page it shows."""
    return bool(request.headers.get("x-crontask-refresh"))


def _said(refused: ProblemError | RequestValidationError) -> tuple[int, str]:
    if isinstance(refused, ProblemError):
        return refused.status, refused.detail
    found = refused.errors()
    where = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in found[:5]
    )
    return 422, excerpt(where, 500)


def _as_text(value: object) -> object:
    """What every ``{{ }}`` of a template shows (``finalize``, before the HTML escaping): a
    string with each character that is no text as its escape (``reconciler.visible``; tabs and
    newlines kept), whatever field it is, as the API, the log and the CLI show it. A source's
    error quotes its remote (an ssh server's terminal escapes reached the page raw, and its
    U+202E drew the line reversed); a location, a definition error, a replica's version or a
    problem's detail hold text from elsewhere too. Markup (a macro's) is left as it is: its
    fields came through here."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return escaped(value, keep="\t\n")
    return value


router = APIRouter(route_class=_Page, include_in_schema=False)
_templates = Environment(
    loader=PackageLoader("reconciler.web", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_as_text,
    auto_reload=False,  # read at import, all of them, below: an upgrade installed over a
    cache_size=-1,  # running crontask gave its old code the new templates (every page a 500)
)
_templates.globals.update(
    relative=views.relative,
    absolute=views.absolute,
    human_duration=views.human_duration,
    in_zone=views.in_zone,
    version=__version__,
)
for _name in _templates.list_templates():
    _templates.get_template(_name)

Text = Annotated[str, Query(max_length=views.TEXT_MAX)]
Cursor = Annotated[str | None, Query(max_length=1024, pattern=r"^[A-Za-z0-9_-]+$")]
# Where a sign-in goes next: whatever page the guard sent the person from (``local_path``
# confines it to this site).
NextPath = Annotated[str, Query(max_length=NEXT_MAX)]


def render(request: Request, template: str, code: int = 200, **values: Any) -> HTMLResponse:
    session = session_of(request)
    principal = getattr(request.state, "principal", None)
    role = principal.role if principal is not None else None
    page = _templates.get_template(template).render(
        principal=principal,
        auth_on=context(request).auth is not None,
        loopback=request.app.state.crontask_loopback,
        can_run=role is not None and role.allows(Role.OPERATOR),
        csrf=session.csrf_token(request),
        csrf_field=CSRF_FIELD,
        now=now_of(request),
        refresh=REFRESH_SECONDS,
        path=request.url.path,
        base=base_of(request),
        **values,
    )
    return HTMLResponse(page, status_code=code, headers=_HEADERS)


def now_of(request: Request) -> datetime:
    """The page's clock (``install(clock=...)``; tests pin it)."""
    clock = getattr(request.app.state, "crontask_clock", None)
    return clock() if clock is not None else datetime.now(UTC)


_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _label_or_none(value: str | None, what: str, pattern: re.Pattern[str]) -> str | None:
    if not value:
        return None
    if len(value) > 63 or not pattern.match(value):
        raise ProblemError(422, f"{what}: {value[:63]!r} is not a valid {what}")
    return value


@router.get("/", openapi_extra=role_extra("viewer"))
def tasks_page(
    request: Request,
    runtime: Runtime,
    namespace: Text = "",
    source: Text = "",
    state: Text = "",
    q: Text = "",
    after: Annotated[str | None, Query(max_length=127, pattern=KEY_PATTERN)] = None,
) -> HTMLResponse:
    # An unknown value is refused, as the API refuses it: matching nothing, it would read as
    # "no task is so". Empty, as a plain form sends it, means any.
    if state and state not in views.STATES:
        raise ProblemError(422, f"state: {state[:20]!r} is not one of {', '.join(views.STATES)}")
    if source and source not in _SOURCE_KINDS:
        kinds = ", ".join(_SOURCE_KINDS)
        raise ProblemError(422, f"source: {source[:20]!r} is not one of {kinds}")
    filters = views.Filters(
        namespace=_label_or_none(namespace, "namespace", _LABEL),
        source=source or None,  # checked just above
        state=state or None,  # checked just above
        text=q.strip(),
    )
    page = views.task_page(runtime, filters, after)
    sources = runtime.sources()
    return render(
        request,
        "tasks.html",
        page=page,
        filters=filters,
        states=views.STATES,
        kinds=sorted({s.kind for s in sources} | {SourceKind.API}),
        errors=definition_errors(runtime, sources),
        namespaces=views.namespaces(runtime.in_force()),
        after=after,
    )


@router.get("/tasks/{namespace}/{name}", openapi_extra=role_extra("viewer"))
def task_page(
    request: Request,
    runtime: Runtime,
    namespace: Namespace,
    name: Name,
    status: Text = "",
    cursor: Cursor = None,
) -> HTMLResponse:
    key = f"{namespace}/{name}"
    view = runtime.task(key)
    if view is None:
        return render(request, "missing.html", 404, what=f"task {key}")
    wanted = None
    if status:
        try:
            wanted = RunStatus(status)
        except ValueError:
            raise ProblemError(422, f"status: {status[:20]!r} is not a run status") from None
    try:
        runs, next_cursor = views.history(runtime, key, wanted, cursor)
    except ValueError:
        raise ProblemError(422, "cursor: not one this page issued") from None
    row = views.row_of(runtime, view)
    now = now_of(request)
    return render(
        request,
        "task.html",
        row=row,
        view=view,
        runs=runs,
        next_cursor=next_cursor,
        chosen=status,  # not ``status``: the template's macro of that name would hide it
        statuses=[s.value for s in RunStatus],
        timeline=timeline(runtime, key, row.zone, now),
        # Not for the script's refresh, which replaces only the live regions: a definition of
        # megabytes was dumped and sent again every 5 s for each tab open on it.
        definition=None if _refresh(request) else definition_text(shown(request, view.resource)),
    )


@router.post("/tasks/{namespace}/{name}/run", openapi_extra=role_extra("operator"))
def run_now(request: Request, runtime: Runtime, namespace: Namespace, name: Name) -> Response:
    key = f"{namespace}/{name}"
    # Answered as the API answers it, once the store holds the run's first record (its claim
    # or its skip, decided by the shared store or here): the run's page reads the store, and a
    # redirect before then showed "There is no run" while it went ahead, so the person asked
    # again. Not started, or undecided, is the 503 page; a trigger the scheduler did not take
    # in time may still run, and "retry later" would have it run twice.
    try:
        record, stored = decision(runtime, runtime.trigger(key), stored_too=True)
    except KeyError:
        raise ProblemError(404, f"no task {key}") from None
    except TimeoutError:
        raise scheduler_unanswered(key) from None
    log.info(
        "manual run from the page",
        extra={"fields": {"task": key, "run": record.id, "status": record.status.value}},
    )
    # Not in the store after the wait (a Replace run waits for the run it replaces to stop, a
    # store slow to take its record): the task's page, which refreshes and lists the run once
    # it is recorded; the run's would say there is none, and not refresh.
    where = f"/runs/{record.id}" if stored else f"/tasks/{namespace}/{name}"
    return RedirectResponse(base_of(request) + where, status_code=303)


@router.get("/runs/{run_id}", openapi_extra=role_extra("viewer"))
def run_page(request: Request, runtime: Runtime, run_id: RunId) -> HTMLResponse:
    run = views.run_of(runtime, run_id)
    if run is None:
        # Listed as going by its task, not recorded yet (the task's page links it): waited for.
        key = "/".join(run_id.split(".")[:2])  # namespace.name.slot: labels have no dot
        listed = runtime.task(key)
        if listed is not None and run_id in listed.running:
            return render(request, "run_waiting.html", 404, run_id=run_id, task=key)
        return render(request, "missing.html", 404, what=f"run {run_id}")
    task = runtime.task(run.newest.task)
    return render(
        request,
        "run.html",
        run_id=run_id,
        task=run.newest.task,
        run=run,
        exists=task is not None,
        # Its times in its task's zone, as the task's page shows them; UTC once it is gone.
        zone=views.task_zone(task) if task is not None else "UTC",
        # Refreshed while its newest attempt runs, or while the run waits to retry (its newest
        # attempt failed; the task lists it running until its last attempt ends): earlier
        # attempts are over.
        running=not run.newest.status.finished or (task is not None and run_id in task.running),
        output=views.readable_output,
        summary=views.summary,
    )


@router.get("/runs/{run_id}/output", openapi_extra=role_extra("viewer"))
def run_output(
    runtime: Runtime,
    run_id: RunId,
    attempt: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
) -> PlainTextResponse:
    """An attempt's output as plain text (the latest attempt by default)."""
    record = views.read_store(runtime, lambda store: store.get(run_id, attempt))
    if record is None:
        raise ProblemError(404, f"no run {run_id}" + (f" attempt {attempt}" if attempt else ""))
    return PlainTextResponse(
        record.output,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )


@router.get("/sources", openapi_extra=role_extra("viewer"))
def sources_page(request: Request, runtime: Runtime) -> HTMLResponse:
    return render(
        request,
        "sources.html",
        sources=views.sorted_sources(runtime),
        members=runtime.members(),
    )


@router.get("/login", openapi_extra=role_extra(PUBLIC))
def login_page(request: Request, next: NextPath = "/") -> Response:
    if context(request).auth is None:
        return RedirectResponse(base_of(request) + local_path(next), status_code=303)
    return render(request, "login.html", target=local_path(next), problem=None)


@router.post("/login", openapi_extra=role_extra(PUBLIC))
async def login(request: Request) -> Response:
    auth = context(request).auth
    form = await form_of(request)
    target = local_path(form.get("next"))
    if auth is None:
        return RedirectResponse(base_of(request) + target, status_code=303)
    # The Origin only: the sign-in form is posted before there is a session to derive a
    # token from (Run now carries one, ``Session.check_post``; Sign out, see ``logout``).
    if not same_origin(request):
        raise ProblemError(403, "a sign-in from another site is refused")
    credential = form.get("token", "").strip()
    problem = None
    if not credential:
        problem = "Paste a token or a JWT."
    elif len(credential) > CREDENTIAL_MAX:
        problem = f"That is longer than {CREDENTIAL_MAX} characters: not a token crontask issues."
    else:
        try:
            principal = auth.authenticate(f"Bearer {credential}")
        except AuthFailed as exc:
            warn_auth_failed(request, log, "page sign-in failed", exc.reason)
            problem = "That token is not valid here (unknown, expired or for another server)."
        else:
            response = RedirectResponse(base_of(request) + target, status_code=303)
            if set_session(response, request, credential):
                log.info(
                    "page sign-in",
                    extra={"fields": {"principal": principal.name, "role": principal.role}},
                )
                return response
            log.warning(
                "page sign-in: the token is too long for a session cookie",
                extra={"fields": {"principal": principal.name, "characters": len(credential)}},
            )
            problem = (
                "That token is valid but too long to keep in a browser session (its cookie "
                "would pass the 4096 bytes a browser keeps). Use it with the API, or sign in "
                "with a shorter token."
            )
    return render(request, "login.html", 401, target=target, problem=problem)


@router.post("/logout", openapi_extra=role_extra(PUBLIC))
async def logout(request: Request) -> Response:
    auth = context(request).auth
    if not same_origin(request):
        raise ProblemError(403, "a sign-out from another site is refused")
    # A session to end (this route is public, so that a sign-out with none works) ends when
    # the browser says a page of this origin posted the form (``Sec-Fetch-Site``, or its
    # ``Origin``, which ``same_origin`` found to be this one: no page's script can set either;
    # over plain http to a host name browsers send no ``Sec-Fetch-*``), else when the form
    # carries the session's token. Not the token alone: a
    # page left open before the browser signed in again (another token, or a JWT: a new one
    # each time) carries the token of a session replaced, and neither its refresh (the form
    # is outside the live region) nor a reload (the same post again) changes it. No session
    # (no cookie, an ended or revoked one; no auth file): nothing to end but a dead cookie.
    if (
        auth is not None
        and request.state.principal is not None
        and request.headers.get("sec-fetch-site") != "same-origin"
        and request.headers.get("origin") in (None, "null")
        and not await session_of(request).carries_token(request)
    ):
        raise ProblemError(403, "the form is stale or not from this page: sign out here")
    response = RedirectResponse(base_of(request) + ("/login" if auth else "/"), status_code=303)
    clear_session(response, request)
    return response


@router.get("/static/{name}", openapi_extra=role_extra(PUBLIC))
def asset(name: str) -> Response:
    media = ASSETS.get(name)
    if media is None:
        raise ProblemError(404, f"no asset {name[:100]!r}")
    return Response(
        _ASSET_BODIES[name],
        media_type=media,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
