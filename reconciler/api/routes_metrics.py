"""``/metrics``: the Prometheus scrape, with a bound on what its answers hold in memory.

Why: at 10 000 tasks an answer is 7.6 MB of text (0.46 MB gzipped). Handed to the transport
whole, it stayed in the process until its client read it: 300 connections that sent
``GET /metrics`` without gzip and never read took crontask from 160 MB to 868 MB (a pod's
limit is 512 Mi), and ``cli/connections.py`` drops such a connection only after 30 s without
16 KiB of progress (one address may hold 512). So:

- at most :data:`MAX_ANSWERS` answers are being rendered or sent at once. Past that a scrape is
  answered 503 with Retry-After at once, not queued: a queue would hold the requests, and
  Prometheus scrapes again at its next interval anyway;
- an answer is written in pieces of :data:`CHUNK` bytes, then an empty last one. uvicorn's
  ``send`` waits for the transport to drain *before* it writes (while writing is paused: more
  than 64 KiB unsent), never after; so each piece waits for the ones before it, and the empty
  last one for the last. A place is given back once at most the transport's low-water mark
  (16 KiB) of the answer is left in the process: the place measures unsent, not written, and
  the memory held is :data:`MAX_ANSWERS` bodies however many connections do not read;
- a body rendered less than :data:`REUSE_SECONDS` ago is sent again (one per encoding): a burst
  of scrapers costs one render, and the answers of a burst share one body.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from time import monotonic
from typing import Final

import anyio
from fastapi import APIRouter, Request, Response
from starlette.types import Receive, Scope, Send

from reconciler.api import problems
from reconciler.api.auth import RequiredRole, role_extra
from reconciler.api.routing import GuardedRoute, context, operation_id
from reconciler.sinks.metrics import Metrics, accepts_gzip

MAX_ANSWERS: Final = 4  # 4 x 7.6 MB at 10 000 tasks: Prometheus' HA pair and two more
CHUNK: Final = 64 * 1024  # asyncio's high-water mark: a reader that keeps up waits for nothing
REUSE_SECONDS: Final = 1.0
RETRY_AFTER: Final = b"1"
BUSY: Final = "too many /metrics answers are being sent; retry in a moment"


class Answers:
    """The places of the answers in flight (the event loop's alone: no lock) and the bodies
    rendered last (worker threads': under a lock, which also makes one render of a burst)."""

    def __init__(
        self,
        *,
        max_answers: int = MAX_ANSWERS,
        reuse_seconds: float = REUSE_SECONDS,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.max_answers = max_answers
        self.reuse_seconds = reuse_seconds
        self.clock = clock
        self.active = 0
        self._lock = threading.Lock()
        self._rendered: dict[bool, tuple[float, bytes, dict[str, str]]] = {}

    def enter(self) -> bool:
        if self.active >= self.max_answers:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:  # nothing else holds a body: the last ones go once stale
            asyncio.get_running_loop().call_later(self.reuse_seconds, self._forget_stale)

    def body(self, metrics: Metrics, accept_encoding: str) -> tuple[bytes, dict[str, str]]:
        """The answer for ``accept_encoding``: rendered now, or less than reuse_seconds ago.
        In a worker thread: a render at 10 000 tasks takes 0.15 s of CPU."""
        gzip = accepts_gzip(accept_encoding)
        with self._lock:
            now = self.clock()
            cached = self._rendered.get(gzip)
            if cached is not None and now - cached[0] < self.reuse_seconds:
                return cached[1], cached[2]
            body, headers = metrics.render("gzip" if gzip else "identity")
            self._rendered[gzip] = (now, body, headers)  # as old as its snapshot, not its end
            return body, headers

    def _forget_stale(self) -> None:
        # Not waiting for the lock on the loop: a render holding it is in flight, and holds a
        # place, so a later leave() comes back here.
        if self.active or not self._lock.acquire(blocking=False):
            return
        try:
            now = self.clock()
            for gzip, (rendered_at, _, _) in list(self._rendered.items()):
                if now - rendered_at >= self.reuse_seconds:
                    del self._rendered[gzip]
        finally:
            self._lock.release()


class MetricsAnswer(Response):
    """The scrape, rendered and sent in its place, or a 503 problem when none is free. Both in
    ``__call__``: the place is taken and given back by the same code, whatever happens."""

    def __init__(self, answers: Answers, metrics: Metrics, accept_encoding: str) -> None:
        super().__init__()
        self.answers = answers
        self.metrics = metrics
        self.accept_encoding = accept_encoding

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if not self.answers.enter():
            await problems.send_problem(send, 503, BUSY, path, ((b"retry-after", RETRY_AFTER),))
            return
        try:
            body, headers = await anyio.to_thread.run_sync(
                self.answers.body, self.metrics, self.accept_encoding
            )
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            raw.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": 200, "headers": raw})
            for start in range(0, len(body), CHUNK):
                piece = body[start : start + CHUNK]
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.answers.leave()


def router(metrics_role: RequiredRole) -> APIRouter:
    router = APIRouter(
        route_class=GuardedRoute, tags=["health"], generate_unique_id_function=operation_id
    )
    answers = Answers(clock=monotonic)  # this module's, looked up now: a test may replace it

    @router.get(
        "/metrics",
        response_class=Response,
        summary="Prometheus metrics",
        openapi_extra=role_extra(metrics_role),
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            503: {"description": "Too many scrapes being answered: retry after Retry-After"},
        },
    )
    async def prometheus(request: Request) -> Response:
        # The scrape is formatted in a worker thread, never on the event loop that the
        # scheduler shares. Gzip when asked for (Prometheus always asks).
        metrics = context(request).metrics
        return MetricsAnswer(answers, metrics, request.headers.get("accept-encoding", ""))

    return router
