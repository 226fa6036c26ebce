"""Which ``Host`` a server answers: without auth, or on loopback, its own names, no other.

A server that listens on loopback only is kept from strangers by its address. A web page can
get past it in a browser by DNS rebinding: its own name is made to resolve to 127.0.0.1, and
the page's requests then reach crontask as same-origin requests to ``attacker.example:8080``,
able to read the answers. Without ``--auth-config`` every caller is the anonymous admin, and
such a page could create a command task and run it; with it, the page still read what is
answered without a credential (``/metrics``, ``/readyz``, ``/openapi.json``, ``/docs``, the
sign-in page). What tells them apart is the ``Host`` header, which the browser fills with the
page's name: such a request is answered ``421`` (the request was not meant for this server)
before anything else runs, with or without auth (:func:`names_answered`). ``--external-url``'s
host is answered too, as the name a proxy on the same machine forwards with, and each
``--allow-host`` name (a sidecar proxy that forwards the pod's address or a Service's name);
with auth, ``--allow-host '*'`` answers any name (a credential keeps strangers out of what
changes anything; what is open without one is then open to such pages).

Without auth (``--insecure-no-auth``) the same holds on every address: a page whose name was
made to resolve to the machine's public address is as much the admin there as on loopback.
Any IP address is answered then, on every address (a rebinding page's requests name the page's
own name; an address is no name a page can own: ``http://192.0.2.10:8080`` is whatever answers
there), and the machine's names only as ``--allow-host`` names or ``--external-url``'s host.

Without auth, the probes (:data:`PROBES`) answer whatever the ``Host``: a kubelet's httpGet
probe names the pod's address (answered as any address is), but a load balancer's health check
or a monitor sends the name it was given, and a probe refused is a pod never ready, or
restarted. They change nothing, and ``/readyz`` says only ready or not to such a name
(:data:`BARE_PROBE`). With auth, a server that checks the ``Host`` listens on loopback only,
where no such check comes from: its probes keep the rule.

A server with auth that listens on another address is not checked: every name of the
machine, and its addresses, reach it directly, and none of them can be known here; auth keeps
strangers out (``auth.check_listen``).

A browser's ``POST`` is also checked for its ``Origin`` (:func:`same_origin`): this server's
own, as the ``Host`` header names it, or ``--external-url``'s. Behind a proxy that sends
``Host: 127.0.0.1:8080`` (nginx's ``proxy_pass`` default), the page's origin is the latter.
The ``Host`` it is compared with has passed the check above wherever one is made, so a
rebinding page's own origin is not taken for this server's.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Collection
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.api import problems
from reconciler.hostnames import ANY_NAME, normal_name
from reconciler.logs import bounded
from reconciler.loopback import is_loopback

log = logging.getLogger("crontask.api")

MISDIRECTED: Final = 421
ORIGINS_STATE: Final = "crontask_origins"  # app.state: origins a page of this server has
# Answered whatever the Host without auth (see the module), as a probe sends them: GET or HEAD
# (so no write passes, and same_origin's Host is still one checked), this spelling only.
# /healthz says "ok"; /readyz the status alone (BARE_PROBE): which check fails (the store, the
# sources) is for the names the operator gave, not a page's. /metrics is no probe: it names
# tasks, and a scrape by name needs --allow-host.
PROBES: Final = frozenset({"/healthz", "/readyz"})
BARE_PROBE: Final = "crontask.bare_probe"  # scope key: answer with the status alone
_SHOWN: Final = 100  # of a Host header in the answer
_WARNED_NAMES: Final = 10  # refused names each warned of once a window
_WARNED_WINDOW: Final = 60.0  # seconds: the names of the window before may be warned of again
# Of a Host header, empty as RFC 3986 allows (``host:``); not isdigit(): "²" is a digit.
_PORT: Final = re.compile(r":[0-9]{0,5}")
_NOT_IN_NAME: Final = frozenset("@/\\?#[]")  # of a Host header: each ends a URL's host


def host_name(header: str) -> str:
    """The name or address of a ``Host`` header, without its port; lowercase, without the
    trailing dot of a fully qualified name, an IPv6 address in its short form. A name that is
    not ASCII is no name a browser sends: it is not mapped, and matches nothing. Nor does a
    header that is no host and port (:func:`_name_of`): it is given whole, lowercase (its name
    alone was answered: ``127.0.0.1:80@evil`` and ``127.0.0.1:abc`` as 127.0.0.1)."""
    name = _name_of(header)
    if name is None:
        return header.lower()
    return normal_name(name) if name.isascii() else name.lower().rstrip(".")


def _name_of(header: str) -> str | None:
    """The name of a ``Host`` header that is a host and, if any, a port of 1 to 5 digits: a
    name without ``@``, ``/``, spaces or another character that ends a URL's host, or an IPv6
    address in brackets (``[::1]:8080``); None for another header."""
    if header.startswith("["):  # [::1]:8080
        name, closed, port = header[1:].partition("]")
        if not closed or ":" not in name:  # brackets hold an IPv6 address, nothing else
            return None
    elif header.count(":") == 1:
        at = header.index(":")
        name, port = header[:at], header[at:]
    else:  # no port, or ::1 unbracketed (no client sends it so; it names no other host)
        name, port = header, ""
    if port and _PORT.fullmatch(port) is None:
        return None
    if any(c in _NOT_IN_NAME or c.isspace() or not c.isprintable() for c in name):
        return None
    return name


def is_loopback_name(name: str) -> bool:
    """Whether a ``Host`` header's name (:func:`host_name`) is a loopback one: ``localhost``
    or a loopback address, as ``--listen``'s (``reconciler.loopback``: ``127.1`` and
    ``::ffff:127.0.0.1`` too, which no page can own, as it can a name)."""
    return is_loopback(name)


def is_address(name: str) -> bool:
    """An IP address, as :func:`host_name` gives a header's (an IPv6 one without brackets)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def external_host(url: str | None) -> str | None:
    """The host of ``--external-url``, as :func:`host_name` gives a header's."""
    if not url:
        return None
    name = urlsplit(url).hostname
    return None if name is None else normal_name(name)


def names_answered(
    listen_host: str,
    external_url: str | None,
    allowed: Collection[str] = (),
    *,
    authenticated: bool,
) -> list[str] | None:
    """The names besides loopback ones (and, without auth, IP addresses) that a server
    listening on ``listen_host`` answers (:class:`LoopbackHosts`'s ``also``): ``--external-url``'s
    host and the ``--allow-host`` names (``allowed``, each as :func:`allowed_host` gave it) if
    it listens on loopback only or has no auth (``authenticated``); None, any name, if it has
    auth and listens on another address (see the module), or if ``allowed`` holds
    :data:`ANY_NAME` (which ``crontask run`` refuses without auth)."""
    if (authenticated and not is_loopback(listen_host)) or ANY_NAME in allowed:
        return None
    name = external_host(external_url)
    return ([name] if name else []) + [n for n in allowed if n != name]


def external_origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of ``--external-url``, as a browser writes it in ``Origin``
    (lowercase, without the scheme's default port)."""
    if not url:
        return None
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = f"[{host}]" if ":" in host else host
    shown = "" if port is None or port == {"http": 80, "https": 443}[scheme] else f":{port}"
    return f"{scheme}://{host}{shown}"


class LoopbackHosts:
    """Answer ``421`` to a request whose ``Host`` names neither a loopback address nor one of
    ``also`` (see the module); without auth, any IP address too: a rebinding page's requests
    name the page's own name, never an address. A request without ``Host`` (HTTP/1.0) came from
    no browser page. Without auth, a probe (:data:`PROBES`) is answered for any name, marked
    :data:`BARE_PROBE` for a name not answered otherwise.
    ``authenticated``: auth is configured, so a refusal does not suggest it. The first of each
    name is logged as a warning, with auth or without (the first :data:`_WARNED_NAMES` names a
    minute: a page or a scanner may send as many as it likes, and the name to allow must not be
    lost behind theirs for good): a proxy on this machine that forwards its own name got
    answers before this check covered servers with auth (crontask 0.2.0), and a name of the
    machine before it covered servers without auth on every address; each is refused until
    that name is allowed, and the operator must see which one to allow; warned once in all,
    its name could be lost behind a scanner's."""

    def __init__(
        self, app: ASGIApp, also: Collection[str] = (), *, authenticated: bool = False
    ) -> None:
        self.app = app
        self.also = frozenset(also)
        self.authenticated = authenticated
        self.warned: set[str] = set()
        self._window = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
            if header is not None and not self._answers(host_name(header.decode("latin-1"))):
                if not self._probe(scope):
                    await self._misdirected(
                        send, header.decode("latin-1"), str(scope.get("path", ""))
                    )
                    return
                # In place: the layers outside read what the route wrote in this scope.
                scope[BARE_PROBE] = True
        await self.app(scope, receive, send)

    def _answers(self, name: str) -> bool:
        if is_loopback_name(name) or name in self.also:
            return True
        return not self.authenticated and is_address(name)

    def _probe(self, scope: Scope) -> bool:
        return (
            not self.authenticated
            and scope.get("path") in PROBES
            and scope.get("method") in ("GET", "HEAD")
        )

    async def _misdirected(self, send: Send, header: str, path: str) -> None:
        name = host_name(header)
        if (now := time.monotonic()) - self._window >= _WARNED_WINDOW:
            self.warned.clear()
            self._window = now
        if name not in self.warned and len(self.warned) < _WARNED_NAMES:
            self.warned.add(name)
            fields = {"host": bounded(header, _SHOWN), "path": bounded(path, _SHOWN)}
            warning = _REFUSED_WITH_AUTH if self.authenticated else _REFUSED
            log.warning(warning, extra={"fields": fields})
        if self.authenticated:
            await _refuse_with_auth(send, header, path)
        else:
            await _refuse(send, header, path)


# The first refusal of each name, logged: the operator learns which name to allow.
_REFUSED: Final = (
    "a request for another host name was answered 421 (without --auth-config, only requests "
    "addressed to an IP address, localhost, --external-url's host or an --allow-host name "
    "are answered): if crontask is called by that name (a DNS name of this machine, a "
    "Service's, one a proxy forwards), give it as --allow-host NAME; otherwise it may be a "
    "web page that made its own name resolve here (DNS rebinding), and nothing needs doing. "
    "Further ones of that name are logged with status=421 only (for a minute)"
)
_REFUSED_WITH_AUTH: Final = (
    "a request for another host name was answered 421 (this server listens on "
    "loopback only): if a proxy on this machine forwards that name, give it as "
    "--allow-host NAME (or --allow-host '*' for any name), or have the proxy send the "
    "address it forwards to as the Host; otherwise it may be a web page that made its "
    "own name resolve here (DNS rebinding), and nothing needs doing. Further ones of "
    "that name are logged with status=421 only (for a minute)"
)


async def _refuse(send: Send, header: str, path: str) -> None:
    detail = (
        f"this server answers only requests addressed to it by an IP address, localhost, "
        f"--external-url's host or an --allow-host name, not to {bounded(header, _SHOWN)!r}: "
        "without --auth-config, another name could be a web page that made its own name "
        "resolve here (DNS rebinding). Call it by its address, give the name it is called by "
        "as --allow-host NAME (or in --external-url), or configure auth."
    )
    await problems.send_problem(send, MISDIRECTED, detail, path)


async def _refuse_with_auth(send: Send, header: str, path: str) -> None:
    detail = (
        f"this server listens on loopback only and answers only requests addressed to it by a "
        f"loopback name, --external-url's host or an --allow-host name, not to "
        f"{bounded(header, _SHOWN)!r}: another name could be a web page that made its own name "
        "resolve here (DNS rebinding) to read what is answered without a credential. Call it "
        "as 127.0.0.1 or localhost; behind a proxy on this machine, give the name it forwards "
        "as --allow-host NAME (or --allow-host '*' for any), or have it send the address it "
        "forwards to as the Host."
    )
    await problems.send_problem(send, MISDIRECTED, detail, path)


def same_origin(request: Request) -> bool:
    """False for a request a browser marks as sent by another site (``Sec-Fetch-Site``), or
    from another origin (``Origin``, which browsers send with every POST, PUT and DELETE). A
    client that is no browser sends neither."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and fetch_site == "same-origin"):
        return True
    host = request.headers.get("host", "")
    if origin in (f"http://{host}", f"https://{host}"):
        return True
    app = request.scope.get("app")
    return origin.lower() in getattr(getattr(app, "state", None), ORIGINS_STATE, ())
