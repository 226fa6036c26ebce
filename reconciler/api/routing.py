"""The route class that enforces each route's declared role, and the shared dependencies.

Every route of the app is a :class:`GuardedRoute`: it reads the role the route declares in its
OpenAPI operation (``x-required-role``) and checks the caller before anything else happens
(before the body is read or validated). A route that declares no role cannot be built, so a new
route cannot ship unprotected by accident.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any, Final, NoReturn

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.types import Scope

from reconciler.api.auth import (
    ANONYMOUS,
    PUBLIC,
    REQUIRED_ROLE_KEY,
    AuthConfig,
    AuthFailed,
    Role,
)
from reconciler.api.authfile import AuthFile
from reconciler.api.hosts import same_origin
from reconciler.api.problems import FieldProblem, Problem, ProblemError
from reconciler.api.webhook_secret import WebhookSecret
from reconciler.controller.view import RuntimeView
from reconciler.hostnames import peer_of
from reconciler.logs import bounded
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.refusals import RefusalLog

log = logging.getLogger("crontask.api")

PRINCIPAL_SCOPE_KEY: Final = "crontask.principal"
# The role the guard found for the caller (None: none crontask knows), for a route whose answer
# depends on it (an http URL's secrets are shown to those who may write the task).
ROLE_SCOPE_KEY: Final = "crontask.role"
"""Where the guard leaves the caller's name for the request log (never the credential)."""
# Set once a signed route's caller passed its check (the signature, or a bearer token with the
# role): ``admission`` then keeps one of the webhook's places for its peer (``hook_places``).
PROVEN_SCOPE_KEY: Final = "crontask.proven"

# A bad credential is refused on every request that carries it: a client retrying a revoked
# token on one keep-alive connection wrote 3 000 warnings in 4 s. Each kind of failure (its
# message, reason and client: see hostnames.peer_of) is logged the first time, then at most
# once a minute, with how many were not logged since (``suppressed``), as refused Kubernetes
# writes are; so is a valid credential without the role a route needs ("authorization denied":
# 1 000 requests of a token without a crontask role were 1 000 warnings). The client is part
# of the kind: by (message, reason) alone, a flood's one line a minute named whoever came
# first, and every other address (an operator's own failing client) was never named, for
# fail2ban or a SIEM rule to act on.
AUTH_FAILURES_EVERY: Final = 60.0
# Kinds remembered at most (a flood from many addresses): past it, the oldest is forgotten.
AUTH_FAILURE_KINDS: Final = 256
# Past that many clients failing within a minute, the others share one line a minute (a flood
# from a /48 has 65 536 /64s: a line each would be the flood the limit is for).
OTHER_CLIENTS: Final = "other clients"
# Clients a proxy forwarded (uvicorn's choice from an X-Forwarded-For) counted apart within a
# minute; past them, such failures share one kind per connection address (OTHER_FORWARDED).
# Any local process may forward what it likes: its inventions must not push the clients that
# connect themselves out of AUTH_FAILURE_KINDS into OTHER_CLIENTS.
FORWARDED_KINDS: Final = 16
OTHER_FORWARDED: Final = "other forwarded clients"
# What a failure's line shows of the X-Forwarded-For a caller sent (``forwarded_for``): a
# chain of a few proxies' addresses fits; the rest is anything the caller chose to write.
MAX_FORWARDED_CHARS: Final = 256

# The reason a credential whose bytes are no UTF-8 is refused with (``authorization``).
NOT_UTF8: Final = "credential is not UTF-8"

# The scope's extension under which ``cli/connections.py`` gives the app its connection's
# ``abort()``, ``peer`` (its address, an IPv6 one as its /64) and ``host`` (the address
# itself, whatever uvicorn makes of an X-Forwarded-For): an answer given up on while it
# waits on its reader (routes_metrics) ends at once, and uvicorn says nothing of it.
ABORT: Final = "crontask.abort"


@dataclasses.dataclass(frozen=True, slots=True)
class ApiContext:
    runtime: RuntimeView
    auth: AuthConfig | None
    metrics: Metrics
    webhook_secret: WebhookSecret | None = None  # for routes that take X-Hub-Signature-256
    auth_file: AuthFile | None = None  # where ``auth`` came from, read again when it changes
    # One app's failed authentications, counted for warn_auth_failed (kept by replace()).
    auth_failures: RefusalLog = dataclasses.field(
        default_factory=lambda: RefusalLog(AUTH_FAILURES_EVERY, keep=AUTH_FAILURE_KINDS),
        compare=False,
    )
    # The forwarded clients counted apart (FORWARDED_KINDS), by (connection, client).
    forwarded_failures: RefusalLog = dataclasses.field(
        default_factory=lambda: RefusalLog(AUTH_FAILURES_EVERY, keep=FORWARDED_KINDS),
        compare=False,
    )


def context(request: Request) -> ApiContext:
    ctx = request.app.state.crontask
    assert isinstance(ctx, ApiContext)
    if ctx.auth_file is not None and (auth := ctx.auth_file.current()) is not ctx.auth:
        ctx = dataclasses.replace(ctx, auth=auth)
        request.app.state.crontask = ctx
    return ctx


def _runtime(request: Request) -> RuntimeView:
    return context(request).runtime


Runtime = Annotated[RuntimeView, Depends(_runtime)]


def required_role(route: APIRoute) -> str:
    role = (route.openapi_extra or {}).get(REQUIRED_ROLE_KEY)
    if role != PUBLIC and role not in Role.__members__.values():
        raise RuntimeError(
            f"route {sorted(route.methods or ())} {route.path} declares no valid "
            f"{REQUIRED_ROLE_KEY} (got {role!r}); use openapi_extra=role_extra(...)"
        )
    return str(role)


class GuardedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        role = required_role(self)

        signed = bool((self.openapi_extra or {}).get("x-webhook-signature"))

        async def guarded(request: Request) -> Response:
            ctx = context(request)
            if request.method not in SAFE_METHODS and not same_origin(request):
                # A page of another site may send a POST without asking first (no body, or a
                # form's); without --auth-config its sender would be the anonymous admin.
                raise ProblemError(403, "a request from another site may not change anything")
            # With a webhook secret and no tokens configured, the signature is the only
            # credential: a missing one is refused like a bad one.
            signature_only = ctx.webhook_secret is not None and ctx.auth is None
            if signed and (SIGNATURE_HEADER in request.headers or signature_only):
                await verify_signature(request, role)
            else:
                authorize(request, role)
            if signed:
                request.scope[PROVEN_SCOPE_KEY] = True
            return await handler(request)

        return guarded


def authorize(request: Request, role: str) -> None:
    """Let the caller through or raise the 401/403 problem."""
    auth = context(request).auth
    if role == PUBLIC and (auth is None or request.headers.get("authorization") is None):
        request.scope[PRINCIPAL_SCOPE_KEY] = "anonymous"
        return
    if auth is None:
        request.scope[PRINCIPAL_SCOPE_KEY] = ANONYMOUS.name
        request.scope[ROLE_SCOPE_KEY] = ANONYMOUS.role
        return
    try:
        principal = auth.authenticate(authorization(request.headers))
    except AuthFailed as exc:
        if role == PUBLIC:  # a bad credential on an open route is ignored, not refused
            request.scope[PRINCIPAL_SCOPE_KEY] = "anonymous"
            return
        warn_auth_failed(request, log, "authentication failed", exc.reason, path=request.url.path)
        challenge = 'Bearer realm="crontask"'
        if exc.invalid_token:
            challenge += ', error="invalid_token"'
        raise ProblemError(
            401,
            "a valid bearer token is required"
            if not exc.invalid_token
            else "the bearer token is not valid (unknown, expired or not for this server)",
            headers={"WWW-Authenticate": challenge},
        ) from None
    request.scope[PRINCIPAL_SCOPE_KEY] = principal.name
    request.scope[ROLE_SCOPE_KEY] = principal.role
    if role == PUBLIC:
        return
    needed = Role(role)
    if principal.role is None or not principal.role.allows(needed):
        held = f"role {principal.role}" if principal.role else "no crontask role"
        reason = f"{held}; this needs {needed} or above"
        # Limited as a failed authentication is: a client retrying a token without the role
        # wrote a warning a request. The role held and the one needed are the kind (the
        # reason), with the client; the principal is a field of the line, not of the kind
        # (the first of the minute is named): with it in the kind, a client cycling through
        # JWT subjects (any name an issuer signs) was a line a request, and past
        # AUTH_FAILURE_KINDS each pushed out another client's kind still within its minute.
        warn_auth_failed(
            request,
            log,
            "authorization denied",
            reason,
            principal=principal.name,
            role=principal.role,
            required=needed,
            path=request.url.path,
        )
        raise ProblemError(403, f"{principal.name} has {reason}")


SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SIGNATURE_HEADER: Final = "x-hub-signature-256"


# What GitHub, Gitea and Forgejo send: ``sha256=`` and the digest as 64 lower-case hex digits.
WELL_FORMED_SIGNATURE: Final = re.compile(r"sha256=[0-9a-f]{64}")


async def verify_signature(request: Request, role: str) -> None:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, or a 401.

    Anything that cannot pass (no header or a malformed one, with no bearer token to decide
    instead; no secret configured) is refused before the body is read: strangers trickling
    bodies held the webhook's places for the whole body deadline. The body is hashed as it
    streams in and not kept (a push is up to GitHub's 25 MB, ``door.MAX_HOOK_BODY_BYTES``): the
    route must not read it again."""
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not WELL_FORMED_SIGNATURE.fullmatch(given):
        if context(request).auth is not None and "authorization" in request.headers:
            authorize(request, role)  # a bearer token, with a stray header: the token decides
            return
        _refuse_signature(request, f"malformed {SIGNATURE_HEADER} header" if given else None)
    held = context(request).webhook_secret
    if held is None:
        _refuse_signature(request, "no webhook secret configured")
    secret = await held.fresh()  # read again: rotated?
    digest = hmac.new(secret, digestmod=hashlib.sha256)
    async for chunk in request.stream():
        digest.update(chunk)
    if not hmac.compare_digest(given.encode(), f"sha256={digest.hexdigest()}".encode()):
        _refuse_signature(request, "bad signature", read=True)
    request.scope[PRINCIPAL_SCOPE_KEY] = "webhook"


def _refuse_signature(request: Request, reason: str | None, *, read: bool = False) -> NoReturn:
    """The 401 of a signature refused (``reason`` None: no header), logged as the other
    refused credentials are. Refused before its body was read, the connection is closed: the
    rest of the body would otherwise have to be read through before the next request."""
    reason = reason or f"no {SIGNATURE_HEADER} header"
    warn_auth_failed(request, log, "webhook signature rejected", reason, path=request.url.path)
    raise ProblemError(
        401,
        f"webhook signature rejected: {reason}",
        headers=None if read else {"Connection": "close"},
    )


def authorization(headers: Headers) -> str | None:
    """The ``Authorization`` header as its sender wrote it. Starlette decodes a header's bytes
    as Latin-1, where a token is text whose UTF-8 bytes the auth file's ``sha256`` hashes (as
    ``/login``'s form is read): a token with a non-ASCII character was refused by the API and
    taken by ``/login``. Bytes that are no UTF-8 are :class:`AuthFailed` (a 401 of its own
    reason): read with replacements, many byte strings would be one token, and kept as
    surrogates, one shaped as a JWT made PyJWT fail (a 500)."""
    value = headers.get("authorization")
    if value is None:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        raise AuthFailed(NOT_UTF8, invalid_token=True) from None


def _connection(scope: Scope) -> dict[str, Any]:
    return dict((scope.get("extensions") or {}).get(ABORT) or {})


def connection_peer(scope: Scope) -> str:
    """The caller's address as ``cli/connections.py`` counts it (an IPv6 one as its /64), or
    the client's; "" for none (a Unix socket)."""
    return str(_connection(scope).get("peer") or (scope.get("client") or ("",))[0])


def _client(request: Request) -> tuple[str | None, tuple[str, ...]]:
    """The address of the connection a request came on (None for none: a Unix socket), and
    whom a failure of it is counted by. uvicorn puts the ``X-Forwarded-For`` of a caller it
    trusts as a proxy (on 127.0.0.1 or ::1) in the request's client, which any local process
    sends as it likes: the connection's own address (``cli/connections.py`` keeps it as
    ``host``) is the client logged. Counted by its peer (an IPv6 one by its /64), and the
    client uvicorn chose when it differs: every caller behind a proxy a line of its own, as
    README promises; AUTH_FAILURE_KINDS bounds them as any."""
    given = request.client.host if request.client else None
    host = _connection(request.scope).get("host") or given
    if host is None:
        return None, ()
    counted: tuple[str, ...] = (peer_of(str(host)),)
    if given is not None and given != host:  # forwarded by a proxy uvicorn trusted
        counted += (peer_of(given),)
    return str(host), counted


def warn_auth_failed(
    request: Request, logger: logging.Logger, message: str, reason: str, **fields: object
) -> None:
    """Log a refused credential as ``message``, naming ``reason`` (never the credential), the
    client and ``fields`` of this one: the first of its kind (message, reason, client), then
    one a minute at most, with how many were not logged since (``suppressed``); past
    AUTH_FAILURE_KINDS clients within a minute, the others as one (OTHER_CLIENTS). See
    AUTH_FAILURES_EVERY. ``reason`` is one of a few (no name a caller chooses: a principal,
    a path, goes in ``fields``), so that the kinds of one client, and those of the others
    past AUTH_FAILURE_KINDS, are few whatever the callers send. The client is the
    connection's address; an ``X-Forwarded-For`` the caller sent is ``forwarded_for``, as
    sent (bounded): a proxy in front says who it forwards, any local caller may claim anything
    (see ``_client`` for whom a kind is counted by)."""
    client, counted = _client(request)
    forwarded = ", ".join(request.headers.getlist("x-forwarded-for")) or None
    ctx = context(request)
    failures = ctx.auth_failures
    if len(counted) > 1:  # forwarded: a kind of its own while FORWARDED_KINDS have room
        apart = ctx.forwarded_failures
        if counted not in apart and not apart.room():
            counted, forwarded = (counted[0], OTHER_FORWARDED), OTHER_FORWARDED  # said so
        else:
            apart.due(counted)  # remembered for the minute
    kind: tuple[str | None, ...] = (message, reason, *counted)
    if kind not in failures and not failures.room():
        kind, client, forwarded = (message, reason, OTHER_CLIENTS), OTHER_CLIENTS, None
    suppressed = failures.due(kind)
    if suppressed is None:
        return
    said = {"reason": reason, "client": client, **fields, "suppressed": suppressed}
    if forwarded is not None:
        said["forwarded_for"] = bounded(forwarded, MAX_FORWARDED_CHARS)
    logger.warning(message, extra={"fields": said})


def operation_id(route: APIRoute) -> str:
    """The OpenAPI operationId: the endpoint's name (``list_tasks``), stable for clients."""
    return route.name


Link = tuple[str, Mapping[str, str]]
"""An OpenAPI link: the target's operationId and its parameters as runtime expressions."""


def links(statuses: tuple[int, ...], **targets: Link) -> dict[str, Any]:
    """An ``openapi_extra`` fragment: OpenAPI links from these responses to other operations
    (what a client, or schemathesis' stateful phase, may call next with what it got)."""
    declared = {
        name: {"operationId": operation, "parameters": dict(parameters)}
        for name, (operation, parameters) in targets.items()
    }
    return {"responses": {str(status): {"links": declared} for status in statuses}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` declaring problem answers (their content type is fixed in ``app.py``)."""
    return {s: {"model": Problem, "description": _DESCRIPTIONS.get(s, "Error")} for s in statuses}


_DESCRIPTIONS: Mapping[int, str] = {
    401: "No valid bearer token",
    403: "The caller's role is not enough",
    404: "Not found",
    409: "Conflict",
    412: "Precondition failed: the task is not at a version If-Match names",
    422: "Invalid input; `errors` names each failing field",
    500: "Internal error",
    503: "Temporarily unavailable",
}

__all__ = [
    "ABORT",
    "AUTH_FAILURES_EVERY",
    "AUTH_FAILURE_KINDS",
    "ApiContext",
    "FieldProblem",
    "GuardedRoute",
    "Runtime",
    "authorization",
    "authorize",
    "connection_peer",
    "context",
    "problem_responses",
    "required_role",
    "warn_auth_failed",
]
