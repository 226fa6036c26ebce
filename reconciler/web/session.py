"""Who is looking at the page: the session cookie, the role check and CSRF.

Without ``--auth-config`` the page is open, as the API is (crontask then listens on loopback
only, unless ``--insecure-no-auth``: the page's header says which), and every caller is the
anonymous admin.

With it, a person signs in at ``/login`` with a token or a JWT, as an API client would send it.
The credential is checked like a bearer token and kept in a cookie that is ``HttpOnly``
(no script reads it), ``SameSite=Strict`` (no other site's page sends it), ``Secure`` behind
HTTPS (or when ``--external-url`` is ``https://``), and sealed (:func:`seal`): encrypted and
authenticated with ``AuthConfig.session_key``, with the moment the session ends, after
:data:`SESSION_SECONDS` (or with the JWT). That key is derived from the auth file and a secret
it names (``sessionSecretFile``, an HMAC JWT secret), or, when it names none, drawn by the
process: token digests are no secret, and a key anyone who reads the file could derive would
unseal the credential. A browser sends a cookie to every port of its host, so another service
there sees the cookie, never the credential (and another crontask there does not replace it:
each names its cookie after the origin it is reached at, :func:`cookie_name`); and a copy of
the cookie stops working when its session ends, whatever the copy says of its age. Each
request checks the credential again with the auth file, exactly as the API checks a bearer
token: roles, JWT expiry and a token removed from the file take effect at once, on every
replica and across restarts when a secret is named (each derives the same key; without one a
session holds on its process only). Signing out removes the cookie from the browser (and the
one crontask 0.9.0 named ``crontask_session``); a copy taken before stays valid until its
session ends.
The credential is never logged.

Every ``POST`` of the page is refused when its ``Origin`` or ``Sec-Fetch-Site`` says another
site sent it (``same_origin``), and one another site sends carries no session (the cookie is
``SameSite=Strict``). ``/login`` checks that alone: it is posted before there is a session.
A post that needs a role (*Run now*, :class:`PageRoute`) must also carry its form's token,
which only a page of this origin can know: an HMAC of the session's credential (or, without
auth, of a per-process secret), which another site can neither read nor compute
(:meth:`Session.check_post`). *Sign out* ends a session when the browser says a page of this
origin posted it (``Sec-Fetch-Site: same-origin``), and otherwise with that token only: a
page left open when the browser signed in again holds the token of the session replaced.
With no session to end (no cookie, an ended or revoked one) it needs no token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import logging
import secrets
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final
from urllib.parse import parse_qs, quote

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from reconciler.api.auth import (
    ANONYMOUS,
    JWT_LEEWAY_SECONDS,
    PUBLIC,
    AuthConfig,
    AuthFailed,
    Principal,
    Role,
)
from reconciler.api.hosts import host_name, same_origin
from reconciler.api.problems import ProblemError
from reconciler.api.routing import (
    PRINCIPAL_SCOPE_KEY,
    GuardedRoute,
    authorization,
    context,
    required_role,
)

log = logging.getLogger("crontask.web")

COOKIE: Final = "crontask_session"  # the name's stem; see cookie_name
SESSION_SECONDS: Final = 12 * 3600
CREDENTIAL_MAX: Final = 3000  # a cookie holds about 4 KiB: base64 adds a third, sealing 36
# What browsers keep of a cookie's name=value (RFC 6265bis; Chromium drops a larger one
# silently, and the sign-in would loop back to /login).
_COOKIE_MAX: Final = 4096
_NONCE_BYTES: Final = 12
_EXPIRES: Final = struct.Struct(">Q")  # when the session ends, whole seconds of the epoch
# v3: the credential's own UTF-8 after the end (v2 was JSON, whose escapes of '"', '\\' and
# non-ASCII made a cookie of some 3000-character tokens pass 4 KiB). A v2 cookie no longer
# unseals: its holder signs in again.
_SEAL_CONTEXT: Final = b"crontask page session v3"
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"
NEXT_MAX: Final = 2048
_CSRF_CONTEXT: Final = b"crontask page csrf v1"


def cookie_name(instance: str) -> str:
    """The session cookie's name for ``instance``, the origin people reach one crontask at
    (``--external-url``'s, else the one each request addresses, :func:`request_origin`): a
    browser keeps cookies by host name, not port, so two crontasks on one host with one name
    would each replace the other's cookie, and sign its person out. The same after a restart,
    and on replicas behind one ``--external-url`` (who share sessions with a secret); a hash,
    since an origin holds characters no cookie name may."""
    return f"{COOKIE}_{hashlib.sha256(instance.encode()).hexdigest()[:12]}"


def request_origin(request: Request, secure: bool) -> str:
    """The origin the browser addressed, ``scheme://host[:port]`` as in ``Origin``: the
    request's ``Host`` (its host as the Host check reads it, :func:`host_name`, the scheme's
    default port left out) and ``https`` if ``secure``. Not the address crontask listens on:
    two in containers that both listen on ``0.0.0.0:8080`` are reached through two ports of
    one host (``kubectl port-forward``, ``docker -p``), which only ``Host`` tells apart.

    Any client can send any ``Host``, and with auth on a non-loopback address none is refused:
    that gains nothing here. The name only labels the cookie among those the browser keeps for
    the host it really connected to, in its own jar (another's ``Host`` sets no cookie in
    anyone else's browser), and what opens a session is the sealed value, not its name."""
    header = request.headers.get("host", "")  # none (HTTP/1.0) from a browser: any label does
    name = host_name(header)
    if header.startswith("["):  # [::1]:8080
        port = header.partition("]")[2].removeprefix(":")
    else:
        port = header.rpartition(":")[2] if header.count(":") == 1 else ""
    host = f"[{name}]" if ":" in name else name
    shown = f":{port}" if port and port != ("443" if secure else "80") else ""
    return f"{'https' if secure else 'http'}://{host}{shown}"


class Session:
    """The page's view of authentication (one per app). ``instance``: the origin of
    ``--external-url``, after which the cookie is named (:func:`cookie_name`); without it,
    ``by_host`` names it after the origin each request addresses (:func:`request_origin`: a
    sign-in, the pages after it and the sign-out all name one ``Host``); neither (an app in
    this process alone) names the cookie :data:`COOKIE`."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        secure_cookie: bool = False,
        instance: str | None = None,
        by_host: bool = False,
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        # People reach the page over HTTPS (--external-url https://...) through a proxy that
        # crontask does not take X-Forwarded-Proto from (uvicorn trusts only 127.0.0.1's):
        # the request looks like plain HTTP, and the cookie must be Secure all the same.
        self.secure_cookie = secure_cookie
        self._cookie = COOKIE if instance is None else cookie_name(instance)
        self._by_host = by_host and instance is None

    def cookie(self, request: Request) -> str:
        """The session cookie's name for ``request`` (see the class)."""
        if self._by_host:
            return cookie_name(request_origin(request, self.secure(request)))
        return self._cookie

    def secure(self, request: Request) -> bool:
        return self.secure_cookie or request.url.scheme == "https"

    def auth(self, request: Request) -> AuthConfig | None:
        return context(request).auth

    def credential(self, request: Request) -> str | None:
        """The credential this request carries: the session cookie, else a bearer token;
        :class:`AuthFailed` for a bearer token whose bytes are no UTF-8."""
        cookies = cookie_values(request, self.cookie(request))
        auth = self.auth(request)
        if cookies and auth is not None:
            now = time.time()
            return next(filter(None, (unseal(auth.session_key, c, now) for c in cookies)), None)
        header = authorization(request.headers) or ""
        scheme, _, token = header.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    def principal(self, request: Request) -> Principal | None:
        """Who asks; None if no valid credential (the auth file is in force)."""
        auth = self.auth(request)
        if auth is None:
            return ANONYMOUS
        try:
            credential = self.credential(request)
            if credential is None:
                return None
            return auth.authenticate(f"Bearer {credential}")
        except AuthFailed as exc:
            log.info(
                "page session refused",
                extra={"fields": {"reason": exc.reason, "path": request.url.path}},
            )
            return None

    def csrf_token(self, request: Request) -> str:
        try:
            credential = self.credential(request) if self.auth(request) is not None else None
        except AuthFailed:  # no UTF-8: no credential to key the token by
            credential = None
        # Keyed by the credential itself, so that every replica derives the same token; not by
        # its bare SHA-256, which is what the auth file lists for anyone who can read it.
        key = hmac.digest(credential.encode(), _CSRF_CONTEXT, "sha256") if credential else None
        return hmac.new(key or self._secret, _CSRF_CONTEXT, hashlib.sha256).hexdigest()

    async def carries_token(self, request: Request) -> bool:
        """Whether the POST carries this session's token (its form's field, or the header)."""
        form = await form_of(request)
        given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD, "")
        return hmac.compare_digest(given.encode()[:128], self.csrf_token(request).encode())

    async def check_post(self, request: Request) -> None:
        """A 403 unless the POST comes from a page of this origin with the right token."""
        if not same_origin(request):
            raise ProblemError(403, "a request from another site is refused")
        if not await self.carries_token(request):
            raise ProblemError(403, "the form is stale or not from this page; reload and retry")


FORM_MAX: Final = 16 * 1024  # a sign-in form: a token of at most CREDENTIAL_MAX, a path


async def form_of(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, each field's first value. Bounded: a
    body over :data:`FORM_MAX` is a 413."""
    body = await request.body()  # cached: read once for the check and the handler
    if len(body) > FORM_MAX:
        raise ProblemError(413, f"a form of the page is at most {FORM_MAX} bytes")
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=16)
    except ValueError:
        raise ProblemError(400, "too many form fields") from None
    return {name: values[0] for name, values in fields.items() if values}


def seal(key: bytes, credential: str, expires: float) -> str:
    """The cookie of a session: ``credential`` and when the session ends, encrypted and
    authenticated (AES-GCM) with ``key`` (``AuthConfig.session_key``). Browsers send a cookie
    to every port of its host: another service there sees this, never the credential."""
    payload = _EXPIRES.pack(max(0, int(expires))) + credential.encode("utf-8", "surrogateescape")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(_cookie_key(key)).encrypt(nonce, payload, _SEAL_CONTEXT)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(key: bytes, value: str, now: float) -> str | None:
    """The credential of a cookie :func:`seal` made with ``key``, if its session has not ended
    by ``now``; None for anything else (another key, a change, an old session, a forgery)."""
    if len(value) > _COOKIE_MAX:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        payload = AESGCM(_cookie_key(key)).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _SEAL_CONTEXT
        )
        (expires,) = _EXPIRES.unpack_from(payload)
        credential = payload[_EXPIRES.size :].decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError, InvalidTag, struct.error):
        return None
    if expires <= now:
        return None
    return credential or None


def _cookie_key(key: bytes) -> bytes:
    return hmac.digest(key, _SEAL_CONTEXT, "sha256")


def session_seconds(credential: str, now: float | None = None) -> int:
    """How long the cookie lives: :data:`SESSION_SECONDS`, or less if the JWT expires first
    (with the leeway for clock skew it is verified with: a token signed in with during it
    got a cookie already over). The JWT was verified just before; this only reads ``exp``."""
    now = time.time() if now is None else now
    if credential.count(".") == 2:
        try:
            claims = jwt.decode(credential, options={"verify_signature": False})
            exp = claims.get("exp")
            if isinstance(exp, int | float):
                return max(0, min(SESSION_SECONDS, int(exp + JWT_LEEWAY_SECONDS - now)))
        except jwt.InvalidTokenError:
            pass
    return SESSION_SECONDS


def set_session(response: Response, request: Request, credential: str) -> bool:
    """Keep ``credential`` in the session cookie of ``response``; False, and no cookie, if the
    cookie would be larger than a browser keeps (a long token of non-ASCII characters: each
    is up to 4 bytes), which would leave the person signed out without a word."""
    session = session_of(request)
    auth = session.auth(request)
    assert auth is not None  # a sign-in: only with the auth file
    seconds = session_seconds(credential)
    value = seal(auth.session_key, credential, time.time() + seconds)
    name = session.cookie(request)
    if len(name) + 1 + len(value) > _COOKIE_MAX:
        return False
    response.set_cookie(
        name,
        value,
        max_age=seconds,
        path=base_of(request) or "/",  # two crontasks under two paths of one host: two cookies
        httponly=True,
        samesite="strict",
        secure=session.secure(request),
    )
    return True


def clear_session(response: Response, request: Request) -> None:
    """Remove the session cookie; and one named :data:`COOKIE` alone, as crontask 0.9.0 named
    it, if the browser still sends one this server sealed (it opens nothing now, but stays
    until it expires)."""
    session = session_of(request)
    names = [session.cookie(request)]
    # Only one this server sealed: another crontask 0.9.0 on this host name may hold its own.
    auth, old = session.auth(request), request.cookies.get(COOKIE)
    if old and COOKIE not in names and auth and unseal(auth.session_key, old, time.time()):
        names.append(COOKIE)
    # Under a path, the cookie is kept for it; one kept for "/" (crontask 0.23.0 and older)
    # would go on signing the person in. Not one a crontask at the root of this host keeps
    # there (the same name: one origin): "/" only while every value sent is this server's.
    now = time.time()
    for name in names:
        paths = {base_of(request) or "/"}
        if auth and all(unseal(auth.session_key, v, now) for v in cookie_values(request, name)):
            paths.add("/")
        for path in sorted(paths):
            response.delete_cookie(
                name,
                path=path,
                httponly=True,
                samesite="strict",
                secure=session.secure(request),
            )


def local_path(target: str | None) -> str:
    """``target`` if it is a path of this site, else ``/``: a sign-in never sends a person
    elsewhere (``//evil.example``, ``https://...``, ``/\\evil``)."""
    if (
        not target
        or len(target) > NEXT_MAX
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(ord(c) < 0x20 for c in target)
    ):
        return "/"
    return target


def cookie_values(request: Request, name: str) -> list[str]:
    """Every value of the cookie ``name`` the request carries, in the order sent. A browser
    sends one for each path it keeps one for (the page's path first, then one kept for ``/``
    by crontask 0.23.0 and older), and ``request.cookies`` keeps only the last. The first
    four: each is tried, and any client can send thousands."""
    header = request.headers.get("cookie", "")
    pairs = (chunk.partition("=") for chunk in header.split(";"))
    found = (value.strip() for key, _, value in pairs if key.strip() == name and value.strip())
    return list(itertools.islice(found, 4))


def base_of(request: Request) -> str:
    """The path the page is served under (``web.install``'s ``base``; "" at the root), which
    its links and redirects begin with."""
    found = getattr(request.app.state, "crontask_base", "")
    return found if isinstance(found, str) else ""


def session_of(request: Request) -> Session:
    found = request.app.state.crontask_session
    assert isinstance(found, Session)
    return found


class PageRoute(GuardedRoute):
    """A route of the page: it declares a role like every route, and checks it from the
    session cookie. A person who is not signed in is sent to ``/login`` (a script's refresh
    gets a 401); one whose role is too small gets a 403."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = APIRoute.get_route_handler(self)
        role = required_role(self)

        async def guarded(request: Request) -> Response:
            session = session_of(request)
            principal = session.principal(request)
            request.state.principal = principal
            request.scope[PRINCIPAL_SCOPE_KEY] = principal.name if principal else "anonymous"
            if role == PUBLIC:
                return await handler(request)
            if principal is None:
                if request.method != "GET" or request.headers.get("x-crontask-refresh"):
                    raise ProblemError(401, f"sign in at {base_of(request)}/login")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if len(target) > NEXT_MAX:  # back to the overview, not to an error
                    target = "/"
                login = f"{base_of(request)}/login?next={quote(target)}"
                return RedirectResponse(login, status_code=303)
            needed = Role(role)
            if principal.role is None or not principal.role.allows(needed):
                held = f"role {principal.role}" if principal.role else "no crontask role"
                raise ProblemError(403, f"{principal.name} has {held}; this needs {needed}")
            if request.method == "POST":
                await session.check_post(request)
            return await handler(request)

        return guarded
