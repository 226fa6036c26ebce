"""Admission: at most :data:`MAX_ACTIVE` requests inside the app at once; the rest wait at the
door, holding nothing but their connection, and a request that cannot get in is a 503.

Why: a sync endpoint passes through FastAPI's thread pool up to three times (its
dependencies, the endpoint, the response's validation), and every hop queues behind every
other request. Under a flood of a thousand parallel ``GET /api/v1/tasks``, each request that
had built its answer then waited, answer in hand, behind the others for its next hop: memory
grew with the number of requests in flight (100 tasks: ~360 KB each, 460 MB at 1 000), and
the allocator kept most of it after the flood. Letting only a few requests in at a time
bounds what is held to what those few build; waiting costs a parked coroutine.

A stranger's request (no credential, on a public route) leaves when its answer starts
(``http.response.start``), not when the answer has been sent: held until sent, 16 strangers
reading a public 1.5 MB asset just above ``cli/connections.py``'s floor (16 KiB every 30 s),
each asking for it again on the same connection, kept every place for minutes, and every other
request waited 30 s for a 503. What a public answer holds while it is sent is small or bounded
per connection (a streamed file: a part of it, and the transport's 64 KiB; ``/openapi.json``,
61 KB), and ``/metrics``'s bodies by its own places. Per connection is not in all: 4 000
slow readers of the 1.5 MB asset held 700 MB. So at most :data:`MAX_STRANGER_ANSWERS` of
strangers' answers are sent at once; past them a stranger's is a 503 at once (the answer it
made is dropped unsent), so that strangers can keep out only strangers, and one peer (an
address, an IPv6 /64) at most :data:`STRANGER_SHARE` of them. A small answer
(:data:`SMALL_ANSWER`: ``/login``, the styles) is not counted: it is written whole at once.
``/metrics`` is not counted there (:data:`OWN_PLACES`): its answers have places of their
own, and a slow reader there can be cut for a scrape (``routes_metrics``). An answer to a
caller who is known (a token, a session, or anyone where no auth is configured) keeps its
place until it is sent: such an answer can be megabytes built whole (a list of tasks), and the
places are what bounds how many of them are held while their readers are slow.

Probes (``/healthz``, ``/readyz``) are never queued: a liveness check must not fail because
the API is busy. (Measured and left out: ``MALLOC_ARENA_MAX=2``, glibc's trim and mmap
thresholds and ``malloc_trim`` after a burst changed nothing; what stayed was what the waiting
requests had built, and they no longer build it. ``bench/api_bench.py flood`` measures it.)

A request inside reads its body within :data:`BODY_SECONDS` of its first read, or is answered
408 and its connection closed. A caller is known before the body is read, except on the routes
anyone may call with a body (:data:`PUBLIC_BODIES`: signing in, and the git webhook, whose
signature covers the body): strangers trickling bodies there could otherwise hold every place
inside. ``/login`` has :data:`MAX_PUBLIC_BODIES` places of its own, and the webhook
:data:`MAX_HOOK_BODIES` others, so that at worst they hold that many of the others' while their
bodies run out of time, and strangers trickling bodies to one of them do not keep the other
waiting (when they shared theirs, 12 tricklers at a byte a second delayed a signed delivery to
22 s: GitHub gives up at 10 s). A delivery with neither a well-formed signature nor a bearer
token is refused before its body is read (``routing.verify_signature``), so it holds its place
only for that moment.

A well-formed fake signature is found out only once the body is in: 12 strangers sending one
and a byte a second held the webhook's places for 10 s each, over and over, and a signed
delivery waited 29 s. So a webhook body has a floor: :data:`HOOK_GRACE` after its first read it
must have come at :data:`HOOK_MIN_RATE` since (what came buys time: a pause after much is no
fault), or it is a 408 then. And its places are shared out by peer (``hook_places``): one
holds at most :data:`HOOK_SHARE`, :data:`HOOK_KEPT` of them are kept for peers whose delivery
passed the check lately (``routing.PROVEN_SCOPE_KEY``), and a free place goes to a proven
peer, then to a body come whole (or fast) while it waited, then to the peer holding the fewest,
then to the one given a place longest ago. Its waiters are bounded there, not among the
others' :data:`MAX_WAITING`. GitHub's ways pass: a push of a few KB comes whole at once, 25 MiB
within BODY_SECONDS is 160 times the floor, and its deliveries at once from one address past
the share wait milliseconds for their turn. A deadline from the declared Content-Length would
add nothing: the sender chooses it, and a body kept to the floor is whole by ``HOOK_GRACE +
length / HOOK_MIN_RATE`` anyway. What strangers can still do to a delivery from an address
never proven, measured, is in ``hook_places``.

Plans (:data:`PLANS`) are made one at a time (a large one is seconds of CPU, see
``routes_plan``), and wait for their turn here, at the door, before they take a place: when the
route itself waited, a viewer's 24 plans in a loop held every place in threads that only waited
(an operator's GET of a task took 4-5 s; under 150 loops, a run-now 33 s). At most
:data:`MAX_PLANS_WAITING` wait, each at most :data:`PLAN_WAIT_SECONDS`; past either a plan is
refused, as any request is. Only a plan whose credential authenticates waits (the guard
answers the others 401): strangers' plans held the places of every viewer's.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Final

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.api import problems
from reconciler.api.hook_places import FAST, NOT_YET, WHOLE, Refused, Shares
from reconciler.api.routing import (
    ABORT,
    PRINCIPAL_SCOPE_KEY,
    PROVEN_SCOPE_KEY,
    ROLE_SCOPE_KEY,
    SAFE_METHODS,
    connection_peer,
)

MAX_ACTIVE: Final = 16
MAX_WAITING: Final = 4096
WAIT_SECONDS: Final = 30.0
BODY_SECONDS: Final = 10.0  # a 1 MiB body at 100 KB/s
SLOW_BODY: Final = "the request body did not arrive in time"
UNQUEUED: Final = frozenset({"/healthz", "/readyz"})
GIT_HOOK: Final = "/api/v1/hooks/git"
PUBLIC_BODIES: Final = frozenset({"/login", GIT_HOOK})
MAX_PUBLIC_BODIES: Final = 4  # /login's places
MAX_HOOK_BODIES: Final = 4  # the webhook's, apart from /login's
HOOK_SHARE: Final = 2  # of them for one peer (an address, an IPv6 /64)
HOOK_KEPT: Final = 1  # of them for peers proven lately (``hook_places``)
# The webhook's floor: HOOK_GRACE after its first read, a body has come at HOOK_MIN_RATE since.
# GitHub's 25 MiB within BODY_SECONDS is 2.5 MiB/s; a push of a few KB comes whole at once.
HOOK_GRACE: Final = 1.0
HOOK_MIN_RATE: Final = 16 * 1024  # bytes a second
BELOW_FLOOR: Final = "the request body came slower than 16 KiB a second"
MAX_STRANGER_ANSWERS: Final = 64  # about 11 MB of a public asset's answers to slow readers
STRANGER_SHARE: Final = 8  # of them for one peer (an address, an IPv6 /64)
# An answer this small is written whole at once (the transport takes it, its send does not
# wait): counting it bounds nothing, and refusing it would refuse /login and the styles too.
SMALL_ANSWER: Final = 64 * 1024
OWN_PLACES: Final = frozenset({"/metrics"})
PLANS: Final = frozenset({"/api/v1/plan"})
MAX_PLANS: Final = 1
# A small plan takes milliseconds, so a queue of them passes in time; a 1 MiB one, about a
# second: most of those that wait behind a few would be refused at the end of their wait anyway.
MAX_PLANS_WAITING: Final = 16
PLAN_WAIT_SECONDS = 5.0  # read at each wait (not Final): a test can make it long or short


class Busy(Exception):
    """No room: too many requests waiting, or one waited past :data:`WAIT_SECONDS`."""


class Admission:
    """The ASGI middleware; ``busy`` answers a request refused (the app's 503 problem)."""

    def __init__(
        self,
        app: ASGIApp,
        busy: Callable[[Scope, Receive, Send], object],
        *,
        max_active: int = MAX_ACTIVE,
        max_waiting: int = MAX_WAITING,
        wait_seconds: float = WAIT_SECONDS,
        body_seconds: float = BODY_SECONDS,
        max_public: int = MAX_PUBLIC_BODIES,
        max_hooks: int = MAX_HOOK_BODIES,
        hook_share: int = HOOK_SHARE,
        hook_kept: int = HOOK_KEPT,
        hook_grace: float = HOOK_GRACE,
        hook_rate: float = HOOK_MIN_RATE,
        max_strangers: int = MAX_STRANGER_ANSWERS,
        stranger_share: int = STRANGER_SHARE,
        max_plans: int = MAX_PLANS,
        max_plans_waiting: int = MAX_PLANS_WAITING,
        may_queue_plan: Callable[[Scope], bool] = lambda _: True,
    ) -> None:
        self.app = app
        self.busy = busy
        self.max_active = max_active
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self.body_seconds = body_seconds
        self.max_public = max_public
        # Made here: it waits on no loop of its own.
        self.hooks = Shares(max_hooks, hook_share, kept=hook_kept)
        self.hook_grace = hook_grace
        self.hook_rate = hook_rate
        self.max_strangers = max_strangers
        self.stranger_share = stranger_share
        self.strangers = 0  # strangers' large answers being sent (see the module docstring)
        self._strangers_of: dict[str, int] = {}  # and of each peer
        self.max_plans = max_plans
        self.max_plans_waiting = max_plans_waiting
        self.may_queue_plan = may_queue_plan  # a plan without a credential waits for nothing
        self.active = 0
        self.waiting = 0
        self.plans_waiting = 0
        # Made on the loop that serves: the places inside, those of /login, of PLANS.
        self._room: asyncio.Semaphore | None = None
        self._public: asyncio.Semaphore | None = None
        self._plans: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNQUEUED:
            await self.app(scope, receive, send)
            return
        if self._room is None or self._public is None or self._plans is None:
            self._room = asyncio.Semaphore(self.max_active)
            self._public = asyncio.Semaphore(self.max_public)
            self._plans = asyncio.Semaphore(self.max_plans)
        path = scope.get("path")
        entered: list[Callable[[], object]] = []  # how each place taken is given back
        try:
            if path == GIT_HOOK:
                peer = connection_peer(scope)
                entry = await self._enter_hooks(peer, receive, listen=not _continues(scope))
                if entry is None:
                    return  # its caller closed while it waited: no one to answer
                proven, receive = entry
                entered.append(functools.partial(self.hooks.release, peer, proven))
            elif path in PUBLIC_BODIES:
                await self._enter(self._public, self.wait_seconds)
                entered.append(self._public.release)
            elif path in PLANS and self.may_queue_plan(scope):
                await self._enter_plans(self._plans)
                entered.append(self._plans.release)
            await self._enter(self._room, self.wait_seconds)
            entered.append(self._room.release)
        except Busy:
            self._leave(entered)
            await self.busy(scope, receive, send)  # type: ignore[misc]
            return
        self.active += 1
        inside, refused = True, False
        counted: str | None = None  # the stranger's peer its answer is counted against

        async def answering(message: Message) -> None:
            # A stranger's answer is made: its places go before it is sent (see the module
            # docstring). The route has said who the caller is by then.
            nonlocal inside, counted, refused
            if refused:
                return  # the rest of an answer refused in its place
            if inside and message["type"] == "http.response.start" and _stranger(scope):
                inside = False
                self.active -= 1
                self._leave(entered)
                if path not in OWN_PLACES and _large(message):
                    counted = self._count_stranger(scope)
                    if counted is None:
                        refused = True
                        await self.busy(scope, receive, send)  # type: ignore[misc]
                        return
            await send(message)

        try:
            await self.app(scope, self._timed(receive, floor=path == GIT_HOOK), answering)
        finally:
            if path == GIT_HOOK and scope.get(PROVEN_SCOPE_KEY):
                self.hooks.prove(connection_peer(scope))  # before its place is given on
            if inside:
                self.active -= 1
                self._leave(entered)
            if counted is not None:
                self._uncount_stranger(counted)

    def _count_stranger(self, scope: Scope) -> str | None:
        """Count a stranger's large answer against all of them and its peer's share; None (it
        is refused) when either is full."""
        peer = connection_peer(scope)
        mine = self._strangers_of.get(peer, 0)
        if self.strangers >= self.max_strangers or mine >= self.stranger_share:
            return None
        self.strangers += 1
        self._strangers_of[peer] = mine + 1
        return peer

    def _uncount_stranger(self, peer: str) -> None:
        self.strangers -= 1
        left = self._strangers_of.pop(peer) - 1
        if left:
            self._strangers_of[peer] = left

    def _timed(self, receive: Receive, *, floor: bool) -> Receive:
        """``receive`` with one deadline over the whole body and, with ``floor``, the
        webhook's floor rate; a late body is a 408 (FastAPI passes an HTTPException raised
        while it reads through to the problem handler)."""
        started: float | None = None
        received = 0
        complete = False

        async def timed() -> Message:
            nonlocal started, received, complete
            if complete:  # after the body only a disconnect comes, whenever it comes
                return await receive()
            now = asyncio.get_running_loop().time()
            if started is None:
                started = now
            due, why = started + self.body_seconds, SLOW_BODY
            # What has come buys time at the floor rate: a pause after much is not refused.
            behind = started + self.hook_grace + received / self.hook_rate
            if floor and behind < due:
                due, why = behind, BELOW_FLOOR
            try:
                message = await asyncio.wait_for(receive(), max(due - now, 0))
            except TimeoutError:
                raise HTTPException(408, why, headers={"Connection": "close"}) from None
            received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return timed

    async def _enter(self, gate: asyncio.Semaphore, seconds: float) -> None:
        if gate.locked() and self.waiting >= self.max_waiting:
            raise Busy
        self.waiting += 1
        try:
            await asyncio.wait_for(gate.acquire(), seconds)
        except TimeoutError:
            raise Busy from None
        finally:
            self.waiting -= 1

    async def _enter_hooks(
        self, peer: str, receive: Receive, *, listen: bool
    ) -> tuple[bool, Receive] | None:
        """A place of the webhook's for ``peer`` (see ``hook_places``): whether taken as a
        proven peer's, and the request's ``receive`` from then on; None if its caller closed
        while it waited. While it waits, its first message is listened for (kept for the
        route): a close is seen then (uvicorn says it to ``receive`` at once), and a body come
        whole in it, or a second's worth at the floor rate, goes before strangers still
        trickling theirs."""
        taken = self.hooks.take_now(peer)
        if taken is not None:
            return taken, receive
        # Not one that waits to be told to send its body (``Expect: 100-continue``): asking
        # for it tells the caller to send it, before its signature is looked at.
        loop = asyncio.get_running_loop()
        listening = asyncio.ensure_future(receive()) if listen else loop.create_future()
        acquiring = asyncio.ensure_future(
            self.hooks.acquire(peer, self.wait_seconds, functools.partial(self._come, listening))
        )
        try:
            await asyncio.wait({acquiring, listening}, return_when=asyncio.FIRST_COMPLETED)
            if not acquiring.done() and listening.result()["type"] == "http.disconnect":
                acquiring.cancel()  # given its place meanwhile, it gives it back
                await asyncio.gather(acquiring, return_exceptions=True)
                return None
            self.hooks.give()  # its turn may have come with its body (a kept place if whole)
            taken = await acquiring
        except (TimeoutError, Refused):
            raise Busy from None
        finally:
            for task in (acquiring, listening):
                if not task.done():
                    task.cancel()  # uvicorn's receive keeps the body it has not given
        if not listening.done() or listening.cancelled() or listening.exception() is not None:
            return taken, receive  # nothing read that the route must be given
        return taken, _replaying(listening.result(), receive)

    def _come(self, listening: asyncio.Future[Message]) -> int:
        """How much of a waiting request's body its first message (``listening``) was."""
        if not listening.done() or listening.cancelled() or listening.exception() is not None:
            return NOT_YET
        message = listening.result()
        if message["type"] != "http.request":
            return NOT_YET
        if not message.get("more_body", False):
            return WHOLE
        return FAST if len(message.get("body", b"")) >= self.hook_rate else NOT_YET

    async def _enter_plans(self, plans: asyncio.Semaphore) -> None:
        if plans.locked() and self.plans_waiting >= self.max_plans_waiting:
            raise Busy
        self.plans_waiting += 1
        try:
            await self._enter(plans, PLAN_WAIT_SECONDS)
        finally:
            self.plans_waiting -= 1

    @staticmethod
    def _leave(entered: list[Callable[[], object]]) -> None:
        for release in entered:
            release()


def _replaying(first: Message, receive: Receive) -> Receive:
    """``receive`` that gives ``first`` (read while the request waited) before the rest."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return first

    return replayed


def _continues(scope: Scope) -> bool:
    """Whether the request waits for ``100 Continue`` before it sends its body."""
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers") or ()
    )


def _stranger(scope: Scope) -> bool:
    """Whether a request was answered to nobody known: no role given (``routing.authorize``
    gives one to every caller when no auth is configured) and no principal but ``anonymous``
    (a page's signed-in person has one), or a route that asks neither (a ``/docs`` asset)."""
    principal = scope.get(PRINCIPAL_SCOPE_KEY, "anonymous")
    return scope.get(ROLE_SCOPE_KEY) is None and principal == "anonymous"


def _large(start: Message) -> bool:
    """Whether an answer (its ``http.response.start``) may wait on its reader: no length said
    (streamed), or more than SMALL_ANSWER."""
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-length":
            return not value.isdigit() or int(value) > SMALL_ANSWER
    return True


# What a write cut at a stop adds to its 503: its thread may still finish it.
CUT_WRITE: Final = ": it may have been done; look before asking again"


async def cut_at_stop(scope: Scope, send: Send, method: str, path: str, *, started: bool) -> None:
    """Answer a request the stop cut (``cli.api_server.HTTP_STOP_WAIT``; uncaught, uvicorn
    logs a traceback and answers 500): a 503, or, its answer begun, its connection dropped
    (seen lost before this task's next turn: no error from uvicorn). A write's 503 says it may
    have been done, not a plain "ask again": a run-now asked again would run twice."""
    if not started:
        said = "" if method in SAFE_METHODS else CUT_WRITE
        await problems.send_problem(send, 503, f"crontask is stopping{said}", path)
        return
    ((scope.get("extensions") or {}).get(ABORT) or {}).get("abort", lambda: None)()
    await asyncio.sleep(0)
