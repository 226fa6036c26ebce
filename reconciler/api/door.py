"""The layers every request of the API passes before its route: :class:`RequestLog` (one line
per request, the bounds of its head and body, a one-value header sent twice, the last resort
for exceptions) and :class:`HeadAsGet`; :func:`busy`, the answer of a request admission turns
away."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from fastapi import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler import logs
from reconciler.api import problems
from reconciler.api.admission import GIT_HOOK, cut_at_stop
from reconciler.api.routing import PRINCIPAL_SCOPE_KEY
from reconciler.api.singletons import repeated
from reconciler.api.slashes import encoded_slashes_kept, served_without_slash

log = logging.getLogger("crontask.api")

MAX_BODY_BYTES: Final = 1 << 20  # a CronTask is a few hundred bytes
TOO_LARGE: Final = "the request body is larger than 1 MiB"
TOO_LARGE_DESCRIPTION: Final = "The body is larger than 1 MiB"
# The git webhook's body is a push event as the sender made it: GitHub caps them at 25 MB, and
# one of 2 048 commits is 1.1 MB. It is not kept, only hashed as it comes (routing.py), within
# the same BODY_SECONDS as any body.
MAX_HOOK_BODY_BYTES: Final = 25 << 20
HOOK_TOO_LARGE: Final = "the request body is larger than 25 MiB"
HOOK_TOO_LARGE_DESCRIPTION: Final = "The body is larger than 25 MiB"
# The status logged for a request whose client went away before its body was whole (nginx's
# "client closed request"): nothing is answered, as nobody is left to read it (uvicorn drops
# what is sent on a closed connection, and says nothing of an answer never started there).
CLIENT_GONE: Final = 499
_LIMIT: Final = (MAX_BODY_BYTES, TOO_LARGE)
_HOOK_LIMIT: Final = (MAX_HOOK_BODY_BYTES, HOOK_TOO_LARGE)
# A request's head (path, query and headers), whole: uvicorn holds one that trickles in to
# 16 KiB, but took one that came in a single read whatever its size (70 KB went through). As
# nginx's default (4 buffers of 8 KiB): a browser's cookies for the host name come with it.
MAX_HEAD_BYTES: Final = 32 * 1024
HEAD_TOO_LARGE: Final = "the request's head (its path, query and headers) is larger than 32 KiB"
QUIET_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})  # probes: debug level
MAX_LOGGED_PATH: Final = 1024


class HeadAsGet:
    """HEAD answered as GET without its body (RFC 9110, 9.3.2: a server supports HEAD wherever
    it supports GET): health checks, uptime monitors and ``curl -I`` ask ``/healthz`` that
    way, and FastAPI's GET routes answered them 405. The headers, Content-Length among them,
    are those of the GET."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headless(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headless)


class RequestLog:
    """One line per request (method, path, status, duration, principal), and the last resort
    for exceptions: a bug is logged with its traceback and answered with a bare 500 problem."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope = encoded_slashes_kept(scope)
        status = 500
        response_started = False
        # What a stranger sent is bounded before it reaches a log line (a 100 KB path would
        # otherwise be 100 KB of log per request).
        method = logs.bounded(str(scope.get("method", "")), 32)
        path = logs.bounded(str(scope.get("path", "")), MAX_LOGGED_PATH)
        scope = served_without_slash(scope)
        limit, too_large = _HOOK_LIMIT if scope.get("path") == GIT_HOOK else _LIMIT

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
            await send(message)

        received = 0
        whole = False  # the body has all come
        gone = False  # the client went away before it had

        async def limited_receive() -> Message:
            nonlocal received, whole, gone
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                whole = not message.get("more_body", False)
                if received > limit:  # FastAPI passes HTTPException through
                    raise HTTPException(413, too_large)
            elif message["type"] == "http.disconnect" and not whole:
                gone = True
            return message

        try:
            if (refused := _refused_at_door(scope, limit, too_large)) is not None:
                status, detail = refused
                await problems.send_problem(send, status, detail, str(scope.get("path", "")))
                return
            await self.app(scope, limited_receive, send_wrapper)
        except ClientDisconnect:
            # A body read met the client's leaving (request.body(), form(), stream()): nobody
            # to answer. A traceback each was 689 KB of log for 200 strangers' connections.
            gone = True
        except asyncio.CancelledError:
            if (task := asyncio.current_task()) is None or not task.cancelling():
                raise  # another's cancellation, not this request's
            task.uncancel()
            await cut_at_stop(scope, send_wrapper, method, path, started=response_started)
        except Exception:
            log.exception("request failed", extra={"fields": {"method": method, "path": path}})
            if not response_started:
                await problems.send_problem(send, 500, None, str(scope.get("path", "")))
            status = 500
        finally:
            if gone:  # whatever was answered (FastAPI makes it a 400) went to nobody
                status = CLIENT_GONE
                log.debug(
                    "client gone before its request body was whole",
                    extra={"fields": {"method": method, "path": path, "received": received}},
                )
            fields = {
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "principal": scope.get(PRINCIPAL_SCOPE_KEY, "anonymous"),
            }
            level = logging.DEBUG if path in QUIET_PATHS and status < 400 else logging.INFO
            log.log(level, "request", extra={"fields": fields})


def _head_bytes(scope: Scope) -> int:
    """The size of a request's head as it came: its path and query, and its headers."""
    headers = sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))
    return len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + headers


def _refused_at_door(scope: Scope, limit: int, too_large: str) -> tuple[int, str] | None:
    """The status and detail of a request refused before any route sees it (a body declared
    too large, a head too large, a one-value header sent twice); None to go on."""
    if _declared_length(scope) > limit:
        return 413, too_large
    if _head_bytes(scope) > MAX_HEAD_BYTES:
        return 431, HEAD_TOO_LARGE
    if (twice := repeated(scope)) is not None:
        return 400, twice
    return None


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def busy(scope: Scope, receive: Receive, send: Send) -> None:
    detail = "the API is busy with other requests; retry in a moment"
    await problems.send_problem(
        send, 503, detail, str(scope.get("path", "")), ((b"retry-after", b"1"),)
    )
