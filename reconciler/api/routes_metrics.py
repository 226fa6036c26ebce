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
- once every place is held, a new scrape takes the place of the oldest answer in flight that
  started :data:`CUT_SECONDS` or more ago to another address, whose connection is dropped
  (aborted); if there is none, the scrape is a 503. Four strangers reading just above
  ``cli/connections.py``'s floor held every place for 17 minutes each, and every real scrape
  was refused. 10 s is Prometheus' default ``scrape_timeout``: an answer still being sent has
  been given up on by then, and one on a slow link is cut only when four others are being sent
  and one more asks. Not one of the same address: a client asking again every few seconds
  would cut its own answers and keep them all young. A cut is logged once a minute at most,
  with how many there were (:data:`CUT`);
- a body rendered less than :data:`REUSE_SECONDS` ago is sent again (one per encoding): a burst
  of scrapers costs one render, and the answers of a burst share one body.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from time import monotonic
from typing import Final

import anyio
from fastapi import APIRouter, Request, Response
from starlette.types import Receive, Scope, Send

from reconciler.api import problems
from reconciler.api.auth import RequiredRole, role_extra
from reconciler.api.routing import ABORT, GuardedRoute, context, operation_id
from reconciler.sinks.metrics import Metrics, accepts_gzip

MAX_ANSWERS: Final = 4  # 4 x 7.6 MB at 10 000 tasks: Prometheus' HA pair and two more
CHUNK: Final = 64 * 1024  # asyncio's high-water mark: a reader that keeps up waits for nothing
REUSE_SECONDS: Final = 1.0
RETRY_AFTER: Final = b"1"
BUSY: Final = "too many /metrics answers are being sent; retry in a moment"
CUT_SECONDS = 10.0  # read at each scrape (not Final): a test makes it short
CUT: Final = "slow /metrics answers were cut for newer scrapes"
_SAY_EVERY: Final = 60.0

log = logging.getLogger("crontask.api")


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
        # The answers in flight, oldest first: when each began, its address, and how to drop
        # its connection (None: it cannot be, served by another server than crontask's).
        self._places: dict[object, tuple[float, object, Callable[[], object] | None]] = {}
        self._cut = 0  # answers cut since the last line said so
        self._said_at: float | None = None
        self._lock = threading.Lock()
        self._rendered: dict[bool, tuple[float, bytes, dict[str, str]]] = {}

    @property
    def active(self) -> int:
        return len(self._places)

    def enter(
        self, abort: Callable[[], object] | None = None, peer: object = None
    ) -> object | None:
        """A place (give it back with :meth:`leave`), or None: every place is held by an
        answer younger than CUT_SECONDS, of ``peer``, or that cannot be dropped."""
        now = self.clock()
        if len(self._places) >= self.max_answers:
            cuttable = (
                (place, drop)
                for place, (began, theirs, drop) in self._places.items()
                if drop is not None and theirs != peer and now - began >= CUT_SECONDS
            )
            oldest = next(cuttable, None)
            if oldest is None:
                return None
            del self._places[oldest[0]]  # its leave(), once its send sees the loss, is a no-op
            oldest[1]()
            self._say_cut(now)
        place = object()
        self._places[place] = (now, peer, abort)
        return place

    def leave(self, place: object) -> None:
        self._places.pop(place, None)
        if not self._places:  # nothing else holds a body: the last ones go once stale
            asyncio.get_running_loop().call_later(self.reuse_seconds, self._forget_stale)

    def _say_cut(self, now: float) -> None:
        self._cut += 1
        if self._said_at is None or now - self._said_at >= _SAY_EVERY:
            log.warning(CUT, extra={"fields": {"cut": self._cut, "after_seconds": CUT_SECONDS}})
            self._cut, self._said_at = 0, now

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
        connection = (scope.get("extensions") or {}).get(ABORT, {})
        place = self.answers.enter(connection.get("abort"), connection.get("peer"))
        if place is None:
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
            self.answers.leave(place)


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
