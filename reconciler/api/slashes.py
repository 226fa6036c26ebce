"""A path with a trailing slash (``/healthz/``, ``/api/v1/tasks/``) is redirected to the path
without it (``307``), as it always was: probes, scrapes and bookmarks written that way keep
working. The ``Location`` is the path alone, relative: the framework's own redirect built an
absolute URL from the caller's ``Host`` header, before authentication. A path whose target
would leave this server (``//host``, a backslash, which browsers read as a slash) is not
redirected; it is the ``404`` of any unknown path.

The one exception is the git webhook (:data:`SERVED_WITH_SLASH`): GitHub and Gitea do not
follow a redirect of a delivery, so the hook written with a slash would fail every push while
the same spelling of any other path keeps working. It is served as the path without the slash
(:func:`served_without_slash`, applied before the body limits and places that go by path)."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.api.admission import GIT_HOOK

SERVED_WITH_SLASH: Final = frozenset({GIT_HOOK})
_ENCODED_SLASH: Final = re.compile("%2f", re.IGNORECASE)


def encoded_slashes_kept(scope: Scope) -> Scope:
    """``scope`` with each ``%2F`` of its path kept as written, a character of its segment
    rather than a separator: a namespace or name holding one is no DNS-1123 label (a 422),
    a route spelled with one is no route (a 404). Decoded, as uvicorn decodes the path,
    ``/api/v1/tasks%2Fdefault%2Fx%2Fruns`` started a run, and a proxy in front that allows or
    denies by the path as sent (Envoy, Istio, leave ``%2F`` encoded) saw another path."""
    raw: bytes = scope.get("raw_path") or b""
    if scope["type"] != "http" or b"%2f" not in raw.lower():
        return scope
    parts = _ENCODED_SLASH.split(raw.decode("latin-1"))
    return {**scope, "path": "%2F".join(unquote(part) for part in parts)}


def served_without_slash(scope: Scope) -> Scope:
    """``scope`` as the path without its one trailing slash, for :data:`SERVED_WITH_SLASH`."""
    if scope["type"] != "http" or scope.get("path", "")[:-1] not in SERVED_WITH_SLASH:
        return scope
    path: str = scope["path"]
    if not path.endswith("/"):
        return scope
    return {**scope, "path": path[:-1], "raw_path": path[:-1].encode("utf-8")}


class SlashRedirect:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = _target(scope) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"location", target), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 307, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _target(scope: Scope) -> bytes | None:
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    if len(raw) < 2 or not raw.endswith(b"/"):
        return None
    path = raw.rstrip(b"/")
    if not path.startswith(b"/") or path.startswith(b"//") or b"\\" in path:
        return None
    query: bytes = scope.get("query_string", b"")
    return path + b"?" + query if query else path
