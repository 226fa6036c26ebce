"""Delivering notifications: one sender per receiver, so a receiver that is down delays
nothing but its own messages.

:class:`Delivery` is the half of the notifier that talks to receivers; what to send, and to
whom, is decided in ``notify``, which hands over each :class:`Message` with
:meth:`Delivery.enqueue` (O(1), on the event loop) and runs the senders inside
:meth:`Delivery.running`.

A message is POSTed as JSON (``notify_payload``); ``generic-hmac`` adds ``X-Signature: sha256=<hex
HMAC-SHA256 of the body>``. Of the response, the status line and headers are read, and a body whose
``Content-Length`` is at most :data:`BODY_READ_MAX`, not encoded (within :data:`BODY_READ_SECONDS`)
so that the next message goes over the same connection (no TCP and TLS handshake each); another body
is not, and its connection is closed. Each attempt has :data:`TIMEOUT_SECONDS` in all (reading the
receiver's urlFile and secretFile, connecting, sending, the status line and headers), so a receiver
that answers slowly or endlessly, or a file on a mount that hangs, holds neither memory nor its
sender (such a read stays one thread, which the next attempts wait for). The client is
``httpclient``'s: what comes before the final status is bounded (a stream of ``100 Continue`` is a
protocol error, not ten seconds of parsing), and the environment's proxies are used but for one
httpx cannot use, which is said and left out, and a CA setting that cannot be used is said
(``trust``): neither ends the notifier. 2xx is ``sent``; a connection error, a timeout, 429 or 5xx,
or a urlFile or secretFile that cannot be used (read as it was rotated: empty, or gone, for a
moment) is retried (1 s, 2 s, 4 s, ... up to :data:`MAX_ATTEMPTS` attempts, or as long as the
``Retry-After`` of a 429 or 503 asks if that is longer, up to :data:`RETRY_AFTER_MAX`) and then
``failed``; another status, or any other error, is ``failed`` at once; a message that finds its
receiver's queue full pushes out the one that costs least to lose (``notify_queue``: ``dropped``). A
message that ends ``failed`` or ``dropped`` is told back (``unsent``): the notifier sends a lost
``failed`` or ``recovered`` again. At shutdown the senders get :data:`SHUTDOWN_SECONDS`, with no
backoff: each message is tried once, until one to its receiver fails, and then the rest of that
receiver's queue is ``dropped`` (one that is down or answering 5xx would otherwise get every queued
message back to back); after the :data:`SHUTDOWN_SECONDS`, a delivery still under way is cancelled
and what is left is ``dropped``. Each outcome is counted in
``crontask_notifications_total{receiver,result}`` (what waits, in ``crontask_notifications_queued``)
and logged with the receiver's name, never its URL or secret, paced so that a receiver that refuses
every message (a revoked webhook, a broken urlFile) or is down under a flood of runs does not flood
the log too: of a receiver's failures, the first at once, then the ones since in one line every
:data:`FAILURES_SAID_EVERY` at most (the last failure, and how many: ``failed``), and the rest when
its sender ends; the messages a full queue pushes out in one line per receiver every
:data:`DROPS_SAID_EVERY` at most (and when the queue drains); and what fails or is dropped after the
stop in one line per receiver when its sender ends. A failure that a TLS error caused (an untrusted
or expired certificate, a name it does not match) says why (``tls``), retried as a connection error;
what a failure says (the ``tls`` reason, the wait a ``Retry-After`` asks) is read in
``notify_failures``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Final, Protocol

import httpx

from reconciler import httpclient, resolver
from reconciler.aio import first_of
from reconciler.sinks import notify_payload
from reconciler.sinks.notify_config import Notifications, Receiver
from reconciler.sinks.notify_failures import failure_fields, retry_after, status_hint
from reconciler.sinks.notify_queue import Message as Message
from reconciler.sinks.notify_queue import MessageQueue
from reconciler.trust import trust

log = logging.getLogger("crontask.notify")

RESULTS: Final = ("sent", "failed", "dropped")
QUEUE_MAX: Final = 1_000  # messages waiting per receiver
MAX_ATTEMPTS: Final = 5
TIMEOUT_SECONDS: Final = 10.0  # one attempt, in all
SHUTDOWN_SECONDS: Final = 5.0  # what stopping gives the messages still queued
RETRY_AFTER_MAX: Final = 60.0  # the longest wait a receiver's Retry-After is granted
DROPS_SAID_EVERY: Final = 60.0  # seconds: how often a full queue's drops are logged, at most
FAILURES_SAID_EVERY: Final = 60.0  # seconds: how often a receiver's failures are, at most
BODY_READ_MAX: Final = 64 * 1024  # bytes of an answer's body read to keep its connection
BODY_READ_SECONDS: Final = 1.0  # how long that read may take, within the attempt's time


class Counter(Protocol):
    """Where outcomes, and the messages queued, are counted (``Metrics`` has these)."""

    def notification_receivers(self, names: Iterable[str], results: Iterable[str]) -> None: ...

    def notified(self, receiver: str, result: str) -> None: ...

    def notifications_queued(self, receiver: str, count: int) -> None: ...


class Delivery:
    """See the module docstring. Each receiver's queue (``queues``) exists from the start;
    its sender only while :meth:`running`. ``clock``: monotonic seconds, for the pace of the
    lines about failures and drops. ``unsent``: told of each message that ends ``failed`` or
    ``dropped``, on the event loop (the notifier sends a lost change of state again)."""

    def __init__(
        self,
        notifications: Notifications,
        *,
        metrics: Counter,
        backoff: float = 1.0,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        unsent: Callable[[Message], None] = lambda message: None,
    ) -> None:
        self.notifications = notifications
        self.metrics = metrics
        self.backoff = backoff
        self.timeout = timeout
        self.transport = transport
        self.clock = clock
        self.unsent = unsent
        self.receivers: dict[str, Receiver] = {r.name: r for r in notifications.config.receivers}
        gauge = metrics.notifications_queued  # told each queue's length as it changes
        self.queues = {n: MessageQueue(functools.partial(gauge, n)) for n in self.receivers}
        self._queued: dict[str, asyncio.Event] = {}
        self._leaving = False  # the ``running`` block is being left: senders end when empty
        # By receiver: the messages a full queue pushed out that no line has said yet, and when
        # the last line about them was (``_say_dropped``).
        self._dropped = dict.fromkeys(self.receivers, 0)
        self._dropped_said: dict[str, float] = {}
        # By receiver: the failures no line has said yet, the level and fields of the last of
        # them, and when the last line about them was (``_say_failed``).
        self._failures = dict.fromkeys(self.receivers, 0)
        self._last_failure: dict[str, tuple[int, dict[str, object]]] = {}
        self._failures_said: dict[str, float] = {}
        # By receiver: what failed, and what was dropped, after the stop (``_say_unsent``).
        self._failed_at_stop = dict.fromkeys(self.receivers, 0)
        self._dropped_at_stop = dict.fromkeys(self.receivers, 0)
        # By receiver: until when (the loop's clock) its last Retry-After asked to be left
        # alone. Stopped, a sender does not knock again before then (``_send``, ``_deliver``).
        self._not_before: dict[str, float] = {}
        # By receiver: the read of its urlFile and secretFile under way (``_read_credentials``).
        self._reading: dict[str, asyncio.Future[tuple[str, bytes | None]]] = {}
        metrics.notification_receivers(self.receivers, RESULTS)

    def enqueue(self, message: Message) -> None:
        """Queued for its receiver; if its queue is full, the message that costs least to
        lose is pushed out (``notify_queue``)."""
        pushed = self.queues[message.receiver].append(message, QUEUE_MAX)
        if pushed is not None:
            self.metrics.notified(message.receiver, "dropped")
            self._dropped[message.receiver] += 1
            self._say_dropped(message.receiver)
            self.unsent(pushed)
        event = self._queued.get(message.receiver)
        if event is not None:
            event.set()

    @contextlib.asynccontextmanager
    async def running(self, stop: asyncio.Event) -> AsyncIterator[None]:
        """The senders, from entering until ``stop`` is set and the block is left; leaving
        waits for them (:data:`SHUTDOWN_SECONDS` at most, then what is left is dropped), so
        what the block enqueues last is still delivered."""
        self._queued = {name: asyncio.Event() for name in self.receivers}
        self._leaving = False
        # Proxies and a CA setting httpx cannot use are said, not the notifier's end (``trust``).
        tls = trust().context
        client = httpclient.async_client(timeout=self.timeout, transport=self.transport, verify=tls)
        async with client:
            senders = [
                asyncio.create_task(self._sender(client, self.receivers[name], stop))
                for name in self.receivers
            ]
            try:
                yield
            finally:
                self._leaving = True
                for event in self._queued.values():
                    event.set()
                # A sender stops by itself once its queue is empty or SHUTDOWN_SECONDS have
                # passed, but only between deliveries: one under way is cancelled here.
                _, late = await asyncio.wait(senders, timeout=SHUTDOWN_SECONDS)
                for sender in late:
                    sender.cancel()
                await asyncio.gather(*senders, return_exceptions=True)

    def _say_dropped(self, name: str, *, drained: bool = False) -> None:
        """One line for the messages of receiver ``name`` a full queue pushed out since the
        last one: the first at once, then at most every :data:`DROPS_SAID_EVERY` (a receiver
        that is down under a flood of runs drops one per run), and when its queue has
        ``drained`` (the flood is over: the rest is said now, not with the next one)."""
        count = self._dropped[name]
        if not count:
            return
        now = self.clock()
        said = self._dropped_said.get(name)
        if not drained and said is not None and now - said < DROPS_SAID_EVERY:
            return
        log.warning(
            "notification dropped: the receiver's queue is full",
            extra={"fields": {"receiver": name, "dropped": count}},
        )
        self._dropped[name] = 0
        self._dropped_said[name] = now

    def _say_failed(self, name: str, *, ending: bool = False) -> None:
        """One line for the failures of receiver ``name`` since the last one: the first at
        once, then at most every :data:`FAILURES_SAID_EVERY` (a receiver that refuses every
        message fails each one), and when its sender is ``ending``. The line is the last
        failure's, at the highest level among them, with how many (``failed``) if more than
        one."""
        count = self._failures[name]
        if not count:
            return
        now = self.clock()
        said = self._failures_said.get(name)
        if not ending and said is not None and now - said < FAILURES_SAID_EVERY:
            return
        level, fields = self._last_failure.pop(name)
        if count > 1:
            fields = {**fields, "failed": count}
        hint = status_hint(fields.get("status"))  # a redirect's, one above 599
        if hint is not None:
            fields = {**fields, "hint": hint}
        log.log(level, "notification failed", extra={"fields": fields})
        self._failures[name] = 0
        self._failures_said[name] = now

    def _failures_due(self, name: str) -> float | None:
        """Seconds until the failures of ``name`` not said yet may be (None: there are none)."""
        if not self._failures[name]:
            return None
        said = self._failures_said.get(name, self.clock())
        return max(0.0, said + FAILURES_SAID_EVERY - self.clock())

    def _say_unsent(self, name: str) -> None:
        """When receiver ``name``'s sender ends: the failures and drops not said yet, and what
        failed or was dropped after the stop, one line each for all the messages."""
        self._say_failed(name, ending=True)
        self._say_dropped(name, drained=True)
        failed, dropped = self._failed_at_stop[name], self._dropped_at_stop[name]
        self._failed_at_stop[name] = self._dropped_at_stop[name] = 0
        if failed or dropped:
            log.warning(
                "notifications not delivered before shutdown",
                extra={"fields": {"receiver": name, "failed": failed, "dropped": dropped}},
            )

    async def _sender(
        self, client: httpx.AsyncClient, receiver: Receiver, stop: asyncio.Event
    ) -> None:
        try:
            await self._send(client, receiver, stop)
        finally:
            self._say_unsent(receiver.name)

    async def _send(
        self, client: httpx.AsyncClient, receiver: Receiver, stop: asyncio.Event
    ) -> None:
        queue = self.queues[receiver.name]
        queued = self._queued[receiver.name]
        deadline: float | None = None
        given_up = False  # a message failed after the stop: the rest is not tried
        loop = asyncio.get_running_loop()
        while True:
            if not queue:
                self._say_dropped(receiver.name, drained=True)
                # Stopped, it waits for what the block still enqueues until it is left (the
                # notifier's last records are considered after ``stop``, reading the store).
                if self._leaving:
                    return
                queued.clear()
                if stop.is_set():
                    await queued.wait()
                else:  # woken too when the failures held back may be said
                    due = self._failures_due(receiver.name)
                    await first_of(stop, queued, timeout=due)
                    self._say_failed(receiver.name)
                continue
            if stop.is_set() and deadline is None:
                deadline = loop.time() + SHUTDOWN_SECONDS
            held = self._asked_to_wait(receiver) - loop.time()  # its Retry-After's rest
            if deadline is not None and (given_up or loop.time() + max(held, 0.0) > deadline):
                # Out of time, or the receiver asked to be left alone for longer than is left
                # (a rate limit: one request per message would only be refused the same way),
                # or a message to it has failed since the stop (with no backoff left, the
                # others would follow it back to back: a receiver answering 5xx got hundreds
                # of requests in a second). Dropped and counted, and so is what the stopping
                # notifier still enqueues.
                self._drop_at_shutdown(receiver, queue)
                continue
            if held > 0:  # the next message too waits for what the receiver asked
                await (asyncio.sleep(held) if stop.is_set() else first_of(stop, timeout=held))
                continue
            message = queue.popleft()
            self._say_dropped(receiver.name)  # while the queue stays full, once in a while
            try:
                result = await self._deliver(client, receiver, message, stop)
            except asyncio.CancelledError:
                queue.appendleft(message)
                self._drop_at_shutdown(receiver, queue)
                raise
            except Exception as err:  # a bug must not end the sender: the queue would grow
                fields: dict[str, object] = {"receiver": receiver.name, "error": type(err).__name__}
                result = self._failed(stop, logging.ERROR, fields)
            self.metrics.notified(receiver.name, result)
            if result == "failed":
                self.unsent(message)
            given_up = given_up or (result == "failed" and stop.is_set())

    def _drop_at_shutdown(self, receiver: Receiver, queue: MessageQueue) -> None:
        """Counted, and said when the sender ends (``_say_unsent``)."""
        dropped = list(queue)
        queue.clear()
        self._dropped_at_stop[receiver.name] += len(dropped)
        for message in dropped:
            self.metrics.notified(message.receiver, "dropped")
            self.unsent(message)

    def _failed(self, stop: asyncio.Event, level: int, fields: dict[str, object]) -> str:
        """``"failed"``, logged at ``level`` at the pace of ``_say_failed``; after the stop,
        at DEBUG, and said with the others when the sender ends (``_say_unsent``)."""
        name = str(fields["receiver"])
        if stop.is_set():
            self._failed_at_stop[name] += 1
            log.debug("notification failed", extra={"fields": fields})
            return "failed"
        self._failures[name] += 1
        held = self._last_failure.get(name)
        self._last_failure[name] = (max(level, held[0]) if held else level, fields)
        self._say_failed(name)
        return "failed"

    def _credentials(self, receiver: Receiver) -> tuple[str, bytes | None]:
        """The receiver's URL and, for a signing receiver, its secret, read from their files
        now (they may be rotated). ValueError if one is unusable."""
        url = self.notifications.url_of(receiver, named=True)
        secret = self.notifications.secret_of(receiver) if receiver.type == "generic-hmac" else None
        return url, secret

    async def _read_credentials(
        self, receiver: Receiver, deadline: float
    ) -> tuple[str, bytes | None]:
        """:meth:`_credentials`, by ``deadline`` (the loop's clock; TimeoutError after it)."""
        if receiver.url is not None and receiver.type != "generic-hmac":
            return self._credentials(receiver)  # nothing to read
        # Read in a thread of its own, which nothing joins: a file on a mount that hangs
        # holds up neither the process's exit nor the attempt past its deadline. While one
        # read is under way, the next attempts wait for it rather than start a thread each.
        read = self._reading.get(receiver.name)
        if read is None:
            read = resolver.abandonable(functools.partial(self._credentials, receiver))
            self._reading[receiver.name] = read
            read.add_done_callback(functools.partial(self._read_ended, receiver.name))
        async with asyncio.timeout_at(deadline):
            # Shielded: an attempt that gives up leaves the read to the next one.
            return await asyncio.shield(read)

    def _read_ended(self, name: str, read: asyncio.Future[tuple[str, bytes | None]]) -> None:
        if self._reading.get(name) is read:
            del self._reading[name]
        if not read.cancelled():
            read.exception()  # retrieved: the attempt that wanted it may have given up

    async def _deliver(
        self,
        client: httpx.AsyncClient,
        receiver: Receiver,
        message: Message,
        stop: asyncio.Event,
    ) -> str:
        fields: dict[str, object] = {"receiver": receiver.name, "event": message.event}
        task = message.body.get("task")
        if task:
            fields["task"] = task["key"]
        body_data = notify_payload.slack(message.body) if receiver.type == "slack" else message.body
        body = notify_payload.body_of(body_data)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            level = logging.WARNING
            try:
                status, asked, wrong = await self._attempt(client, receiver, body)
            except _Unusable as err:
                # Read while it was being rotated (rewritten in place: empty, or gone, for a
                # moment)? Tried again like a receiver that is down; if it stays so, the
                # operator's to mend: said at ERROR.
                status, asked, wrong, level = None, None, {"error": str(err)}, logging.ERROR
            except Exception as err:
                # Not a failure of the receiver but of the request (a URL httpx cannot use):
                # trying again cannot help. Only the type is logged: the text may quote the URL.
                said = {**fields, "attempt": attempt, "error": type(err).__name__}
                return self._failed(stop, logging.ERROR, said)
            if status is not None and 200 <= status < 300:
                log.debug("notification sent", extra={"fields": {**fields, "status": status}})
                return "sent"
            retryable = status is None or status == 429 or 500 <= status < 600
            said = {**fields, "attempt": attempt, "status": status, "error": None, **wrong}
            delay = self.backoff * 2 ** (attempt - 1)
            if status in (429, 503):
                # A rate limit (Slack's is 30 s) or maintenance says when to come back: sooner
                # would only spend the attempts. Capped, and never sooner than the backoff.
                wanted = retry_after(asked, datetime.now(UTC))
                if wanted is not None:
                    delay = max(delay, min(wanted, RETRY_AFTER_MAX))
                    loop = asyncio.get_running_loop()
                    self._not_before[receiver.name] = loop.time() + min(wanted, RETRY_AFTER_MAX)
            if not retryable or attempt == MAX_ATTEMPTS or stop.is_set():
                return self._failed(stop, level, said)
            # At debug: a receiver that is down would write a line per attempt, four a message,
            # where its failures are paced to one line a minute (``notify_failures``).
            log.debug(
                "notification not delivered; retrying",
                extra={"fields": {**said, "in_seconds": round(delay, 3)}},
            )
            await first_of(stop, timeout=delay)
            if stop.is_set() and self._asked_to_wait(receiver) > asyncio.get_running_loop().time():
                # Woken by the stop before the time the receiver asked for: not sooner.
                return self._failed(stop, level, said)
        return "failed"

    async def _attempt(
        self, client: httpx.AsyncClient, receiver: Receiver, body: bytes
    ) -> tuple[int | None, str | None, dict[str, object]]:
        """One attempt, in :attr:`timeout` in all (reading the receiver's files included): the
        answer's status and ``Retry-After``, or no status and what went wrong (worth another
        attempt: ``error``, and ``tls`` or ``cause``, see :func:`failure_fields`), as fields
        of the log lines. :class:`_Unusable` if a file of the receiver is; another exception
        if the request cannot be made (a URL httpx cannot use: trying again cannot help)."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            url, secret = await self._read_credentials(receiver, deadline)
        except ValueError as err:
            raise _Unusable(str(err)) from None
        except TimeoutError:  # a mount that hangs may answer again
            return None, None, {"error": f"{_files(receiver)} not read within {self.timeout:g}s"}
        try:
            status, asked = await self._post(
                client, url, self._headers(body, secret), body, deadline
            )
        except (httpx.HTTPError, TimeoutError) as err:
            # Only the type: the text may quote the URL. But a certificate that does not verify,
            # a name that does not resolve and a refused connection are said apart, from the
            # cause chain (``failure_fields``). Still retried: a certificate being replaced may
            # verify a moment later, a name be published, a receiver come back.
            return None, None, {"error": type(err).__name__, **failure_fields(err)}
        return status, asked, {}

    def _asked_to_wait(self, receiver: Receiver) -> float:
        return self._not_before.get(receiver.name, 0.0)

    @staticmethod
    def _headers(body: bytes, secret: bytes | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "crontask"}
        headers["Accept-Encoding"] = "identity"  # httpx offers gzip; an encoded body goes unread
        if secret is not None:
            headers[notify_payload.SIGNATURE_HEADER] = notify_payload.signature(secret, body)
        return headers

    async def _post(
        self,
        client: httpx.AsyncClient,
        url: str,
        headers: dict[str, str],
        body: bytes,
        deadline: float,
    ) -> tuple[int, str | None]:
        """The response's status and its ``Retry-After``. httpx's timeout is per read, so a
        receiver sending a byte now and then would hold the attempt for ever: the deadline
        (the loop's clock) is for all of it. What comes before the final status is bounded by
        ``httpclient`` (a stream of ``100 Continue``); the body by :func:`_read_short`."""
        async with asyncio.timeout_at(deadline):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                await _read_short(response, deadline)
                return response.status_code, response.headers.get("Retry-After")


async def _read_short(response: httpx.Response, deadline: float) -> None:
    """Read the body of ``response`` if its ``Content-Length`` says it is short (or it is a
    204), it is not encoded (never decompressed) and it comes at once, so that httpx can send
    the next message over the same connection. A longer body, a chunked or encoded one, or one
    still coming after :data:`BODY_READ_SECONDS` is left (the connection is closed: an endless
    body costs nothing). The answer is its status whatever the body does: this never fails an
    attempt. A receiver that writes more after its answer has it taken for the next message's
    answer: its own, as any answer it gives."""
    length = response.headers.get("Content-Length", "")
    short = length.isascii() and length.isdigit() and len(length) <= 6
    if not ((short and int(length) <= BODY_READ_MAX) or response.status_code == 204):
        return
    # httpx decodes what it reads, on the loop's thread: 600 bytes of `gzip, gzip` are 256 MiB.
    if response.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        return
    loop = asyncio.get_running_loop()
    # Before the attempt's own deadline, so that this timeout, not the attempt's, ends a read
    # that takes too long.
    until = min(loop.time() + BODY_READ_SECONDS, deadline - 0.1)
    if until > loop.time():
        with contextlib.suppress(TimeoutError, httpx.HTTPError, httpx.StreamError):
            async with asyncio.timeout_at(until):
                await response.aread()


class _Unusable(ValueError):
    """A receiver's urlFile or secretFile cannot be used; the message never quotes them."""


def _files(receiver: Receiver) -> str:
    """The files of ``receiver`` read at each attempt: ``urlFile and secretFile``, ..."""
    named = (("urlFile", receiver.url_file), ("secretFile", receiver.secret_file))
    return " and ".join(name for name, path in named if path is not None)
