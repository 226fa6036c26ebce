"""core/v1 Events about CronTask objects, aggregated and rate-limited like client-go's.

Contract:

- :meth:`EventRecorder.emit` is non-blocking and thread-safe; a worker thread talks to the
  API server. When the queue is full, events are dropped (Events are best-effort by design),
  counted (``dropped``) and logged once every ``REFUSAL_EVERY`` seconds, with ``suppressed``.
- Aggregation (client-go's EventCorrelator): the same object (uid), type, reason and message
  within ``window`` seconds is one Event whose ``count`` and ``lastTimestamp`` are PATCHed,
  not a new object per occurrence. Similar events (client-go's EventAggregator): once
  ``SIMILAR`` different messages of one object, type and reason came within ``window``
  seconds of each other (a job task's failures each name their Job), the next ones, until
  ``window`` seconds pass without any, are one Event, keyed without the message, whose
  message is ``(combined from similar events): <the latest message>``.
- Spam filter: a token bucket per object (``burst`` events, then one per ``refill_seconds``)
  and one overall (``qps``) bound what a misbehaving task can cost the API server.
- ``involvedObject`` names the CronTask with its uid and resourceVersion; ``reason`` is
  CamelCase; ``source.component``/``reportingComponent`` say it was crontask.
- An Event the API server refuses (``403``: the ServiceAccount lacks ``events: create``) is not
  recorded, and counted (``refused``); it is logged as one warning line, without a traceback,
  naming what was asked (``missing``: ``events: create in namespace X``), once per kind of
  refusal (verb, namespace, status) every ``REFUSAL_EVERY`` seconds, with how many came since
  (``suppressed``), as refused status writes are (:mod:`reconciler.sinks.refusals`).
- An Event that gets no answer (the API server unreachable: connection refused or reset, a
  timeout: ``request_timeout``, short, as a server that accepts and never answers would hold
  the worker otherwise; or an answer worth trying again, ``429`` or ``5xx``) is kept and tried
  again ``retry_seconds`` later (or as much later as the answer's ``Retry-After`` asks, up to
  ``MAX_RETRY_AFTER``), ``retries`` times at most, as client-go's recorder tries a failed
  write (12 times, 10 s apart; client-go's REST layer below it also tries a ``429``/``5xx``
  again after its ``Retry-After``); then it is dropped (counted in ``dropped``). The worker
  holds that Event meanwhile: it is the one try per wait (every queued Event would fail
  alike), and those queued behind it wait untried, their tries not counted, until it is
  answered or given up. Its create keeps its name, so a create whose answer was lost is not
  made twice. It is logged as the refusals are, one warning line with the error in a few
  words (``no answer from the API server``, or ``the API server answered 429``), and one for
  those given up, once per namespace every ``REFUSAL_EVERY`` seconds, with ``suppressed``.
  During the wait before a try again, :meth:`EventRecorder.flush` does not wait (nor does a
  stop); during the try it does, as the server may be back. What a stop does not send is
  counted in ``dropped`` and logged: the Events queued and the one in hand (in its try, or
  waiting for the next), once each.
- Any other failure is a bug: logged with its traceback, once per kind of error every
  ``REFUSAL_EVERY`` seconds (with ``suppressed``); that Event is not recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.core.run_events import EventSpec
from reconciler.core.status import ObjectRef, rfc3339
from reconciler.sinks.kubernetes_status import MERGE_PATCH, RETRIED, said
from reconciler.sinks.notify_failures import retry_after
from reconciler.sinks.refusals import RefusalLog, refusal
from reconciler.sinks.token_bucket import TokenBucket

log = logging.getLogger("crontask.sinks")

# As client-go's EventAggregator: past this many different messages of one object, type and
# reason within the window, they are one Event.
SIMILAR = 10
COMBINED = "(combined from similar events): "

# What a request that got no answer raises (urllib3's MaxRetryError, ProtocolError, timeouts
# are HTTPErrors; a socket's own error may come through as it is).
UNANSWERED = (urllib3.exceptions.HTTPError, OSError)

# The longest wait a Retry-After gets: a longer one (or an HTTP-date far off) would hold every
# Event queued behind the one tried; the bound of the retries is what gives up on a server.
MAX_RETRY_AFTER = 60.0

COMPONENT = "crontask"
REPORTING_COMPONENT = "crontask.dev/crontask"


@dataclasses.dataclass
class _Seen:
    name: str
    count: int
    last: float  # monotonic


@dataclasses.dataclass
class _Send:
    """An Event let through (its object's token taken, its aggregation key chosen once), to
    send; held, as it is, and tried again while the API server does not answer."""

    ref: ObjectRef
    event: EventSpec
    at: datetime
    key: tuple[str, str, str, str | None]
    name: str  # of the Event to create, if it comes to that
    tries: int = 0  # made without an answer


@dataclasses.dataclass
class _Similar:
    messages: set[str]  # the different messages seen, up to SIMILAR
    last: float  # monotonic


class EventRecorder:
    def __init__(
        self,
        api: Any,
        *,
        window: float = 600.0,
        burst: int = 25,
        refill_seconds: float = 300.0,
        qps: float = 5.0,
        queue_size: int = 1000,
        instance: str | None = None,
        keep_buckets: int = 4096,
        retries: int = 12,
        retry_seconds: float = 10.0,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._keep_buckets = keep_buckets  # past this many, the full ones go (see _expire)
        self.window = window
        self._burst, self._refill = burst, refill_seconds
        self._overall = TokenBucket(qps, max(1, int(qps * 2)))
        # Each object's bucket, with when it was last used: a bucket unused for burst x
        # refill seconds is full again, as good as a new one, so it can go (see _expire).
        self._per_object: dict[str, tuple[TokenBucket, float]] = {}
        # (object, type, reason, message), the message None for the combined Event.
        self._seen: dict[tuple[str, str, str, str | None], _Seen] = {}
        self._similar: dict[tuple[str, str, str], _Similar] = {}
        self.retries, self.retry_seconds = retries, retry_seconds  # after no answer
        # (connect, read) of each request: short, as the worker waits for it and every Event
        # queued behind it does (a server that accepts and never answers held it 40 s each).
        self.request_timeout: tuple[float, float] = (5, 10)
        # By (verb, namespace, status), ("unreachable", namespace, kept), ("failed", error
        # type), ("full",): emit's drops, from any thread (RefusalLog takes a lock).
        self._refusals = RefusalLog()
        self._queue: queue.Queue[tuple[ObjectRef, EventSpec, datetime] | None] = queue.Queue(
            queue_size
        )
        # Set from a request that got no answer to the end of the wait before the next try: a
        # flush does not wait for the queue meanwhile.
        self._unreachable = threading.Event()
        # An Event taken from the queue and not settled yet (in its try, or waiting for the
        # next): a stop counts it as not sent; under _lock, with _stop, so that it is counted
        # once, by the stop or by the worker (see _not_recorded).
        self._in_hand = False
        self._lock = threading.Lock()
        self._host = instance or socket.gethostname()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.created = 0
        self.patched = 0
        self.dropped = 0
        self.refused = 0
        self.retried = 0  # tries again after no answer

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="event-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop the thread: ``timeout`` bounds the whole of it (the
        stop budget counts it, not more); a thread still in a request the API server holds
        is not waited for past it (a daemon thread, it ends with the process)."""
        deadline = time.monotonic() + timeout
        if not self.flush(timeout):
            with self._lock:  # the worker counts no drop of the one in hand past this
                left = self._queue.qsize() + self._in_hand
                self._stop.set()
                self.dropped += left  # not sent: the thread ends at its next item or try
            if left:
                log.warning("events not sent at stop", extra={"fields": {"events": left}})
        self._stop.set()
        # Not a wait for room: a queue still full is behind a request that may be held
        # (request_timeout); the thread sees ``_stop`` when it takes its next item.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to be sent; False if it was not (at
        once during the wait before a try again: its Events wait for their retries)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline or self._unreachable.is_set():
                return False
            time.sleep(0.01)
        return True

    def emit(self, ref: ObjectRef, event: EventSpec, at: datetime | None = None) -> None:
        try:
            self._queue.put_nowait((ref, event, at or datetime.now(UTC)))
        except queue.Full:
            self.dropped += 1
            since = self._refusals.due(("full",))
            if since is not None:
                fields = {"queue_size": self._queue.maxsize, "suppressed": since}
                log.warning("event not recorded: the queue is full", extra={"fields": fields})

    # -- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                with self._lock:
                    if item is None or self._stop.is_set():  # left after a stop: counted there
                        return
                    self._in_hand = True
                send = self._admit(*item)
                # Not answered, it is tried again, before any Event queued behind it.
                while send is not None and self._overall.take(self._stop):
                    send = self._send(send)
            except Exception as err:
                self._failed(err)
            finally:
                with self._lock:
                    self._in_hand = False
                self._queue.task_done()

    def _answered(self) -> None:
        """The Event in hand answered (recorded or refused): a stop that counted it as not
        sent, the answer coming past its timeout, takes it back, so it is counted once."""
        with self._lock:
            if self._in_hand and self._stop.is_set():
                self.dropped -= 1
            self._in_hand = False

    def _not_recorded(self) -> None:
        """Count the Event in hand in ``dropped``, unless a stop counted it already."""
        with self._lock:
            if not (self._in_hand and self._stop.is_set()):
                self.dropped += 1
            self._in_hand = False

    def _admit(self, ref: ObjectRef, event: EventSpec, at: datetime) -> _Send | None:
        """Let an Event through its object's spam filter (None: dropped), and choose what it
        aggregates with: once, whatever becomes of its requests."""
        owner = ref.uid or ref.key
        used = self._per_object.get(owner)
        bucket = used[0] if used else TokenBucket(1.0 / self._refill, self._burst)
        self._per_object[owner] = (bucket, time.monotonic())
        if not bucket.try_take():
            self._not_recorded()
            return None
        key: tuple[str, str, str, str | None] = (owner, event.type, event.reason, event.message)
        if self._combined(owner, event, time.monotonic()):
            event = dataclasses.replace(event, message=COMBINED + event.message)
            key = (owner, event.type, event.reason, None)
        name = f"{ref.name}.{time.time_ns():x}"  # as client-go names them
        return _Send(ref, event, at, key, name)

    def _send(self, send: _Send) -> _Send | None:
        """One try of ``send``; ``send`` again if it is to be tried again (no answer)."""
        try:
            self._record(send)
        except (*UNANSWERED, ApiException) as err:  # only RETRIED statuses get past _record
            return self._no_answer(send, err)
        self._answered()
        self._unreachable.clear()
        return None

    def _record(self, send: _Send) -> None:
        ref, event, key, now = send.ref, send.event, send.key, time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen.last <= self.window:
            body: dict[str, Any] = {"count": seen.count + 1, "lastTimestamp": rfc3339(send.at)}
            if key[3] is None:  # the combined Event takes the latest message
                body["message"] = event.message
            try:
                self._core.patch_namespaced_event(
                    seen.name,
                    ref.namespace,
                    body,
                    _content_type=MERGE_PATCH,
                    _request_timeout=self.request_timeout,
                )
            except ApiException as err:
                if err.status in RETRIED:  # as client-go: not a refusal, the server's trouble
                    raise
                if err.status != 404:
                    self._refused(err, "patch", ref.namespace)
                    return
            else:
                seen.count += 1
                seen.last = now
                self.patched += 1
                return
        event_body: Any = self._body(send.name, ref, event, send.at)  # the client takes a dict
        try:
            self._core.create_namespaced_event(
                ref.namespace, event_body, _request_timeout=self.request_timeout
            )
        except ApiException as err:
            if err.status in RETRIED:
                raise
            # A try before this one was created, its answer lost (same name): recorded.
            if not (err.status == 409 and send.tries):
                self._refused(err, "create", ref.namespace)
                return
        self._seen[key] = _Seen(send.name, 1, now)
        self.created += 1
        self._expire(now)

    def _no_answer(self, send: _Send, err: Exception) -> _Send | None:
        """No answer from the API server (or one worth trying again): the worker waits
        ``retry_seconds`` (every queued Event would fail alike meanwhile; longer if the answer
        asks so), then returns ``send`` to try again if it has tries left; logged once per
        namespace every REFUSAL_EVERY seconds, and once for those given up."""
        self._unreachable.set()
        if self._stop.is_set():  # a request cut by the stop, or unanswered past it: counted there
            return None
        send.tries += 1
        kept = send.tries <= self.retries
        if kept:
            self.retried += 1
        else:
            self._not_recorded()
        wait = self._wait(err)
        since = self._refusals.due(("unreachable", send.ref.namespace, kept))
        if since is not None:
            fields = {"namespace": send.ref.namespace, "error": said(err), "tries": send.tries}
            if kept:
                fields["in_seconds"] = wait
            what = (
                f"the API server answered {err.status}"
                if isinstance(err, ApiException)
                else "no answer from the API server"
            )
            log.warning(
                f"event not sent: {what}; retrying" if kept else f"event not recorded: {what}",
                extra={"fields": {**fields, "suppressed": since}},
            )
        self._stop.wait(wait)  # given up too: the next Event would get no answer alike
        # The next try says whether the server is back: a flush (a stop) waits for it, not
        # giving up on the queue at once for an outage that may be over.
        self._unreachable.clear()
        return send if kept and not self._stop.is_set() else None

    def _wait(self, err: Exception) -> float:
        """Seconds before a try again: ``retry_seconds``, or what the answer's Retry-After
        asks if longer (as client-go's REST layer waits), up to MAX_RETRY_AFTER."""
        headers = err.headers if isinstance(err, ApiException) else None
        asked = retry_after(headers.get("Retry-After"), datetime.now(UTC)) if headers else None
        return max(self.retry_seconds, min(asked or 0.0, MAX_RETRY_AFTER))

    def _failed(self, err: Exception) -> None:
        """A failure of no known kind (a bug): logged with its traceback, once per kind of
        error every REFUSAL_EVERY seconds; the Event is not recorded."""
        self._not_recorded()
        since = self._refusals.due(("failed", type(err).__qualname__))
        if since is not None:
            log.exception("event not recorded", extra={"fields": {"suppressed": since}})

    def _refused(self, err: ApiException, verb: str, namespace: str) -> None:
        """An Event not recorded because the API server said no: logged once per kind every
        REFUSAL_EVERY seconds (see the module docstring)."""
        self.refused += 1
        since = self._refusals.due((verb, namespace, err.status))
        if since is None:
            return
        fields = refusal(err, f"events: {verb}", namespace)
        log.warning("event not recorded", extra={"fields": {**fields, "suppressed": since}})

    def _combined(self, owner: str, event: EventSpec, now: float) -> bool:
        """Whether ``event`` goes to its object's combined Event of its type and reason: the
        SIMILARth different message within the window, and all of them after it until the
        window passes quiet."""
        group = (owner, event.type, event.reason)
        similar = self._similar.get(group)
        if similar is None or now - similar.last > self.window:
            similar = self._similar[group] = _Similar(set(), now)
        similar.last = now
        if len(similar.messages) < SIMILAR:
            similar.messages.add(event.message)
        return len(similar.messages) >= SIMILAR

    def _expire(self, now: float) -> None:
        if len(self._seen) > 4096:
            for key in [k for k, s in self._seen.items() if now - s.last > self.window]:
                del self._seen[key]
        if len(self._similar) > 4096:
            for group in [g for g, s in self._similar.items() if now - s.last > self.window]:
                del self._similar[group]
        if len(self._per_object) > self._keep_buckets:
            # Every object ever seen (deleted ones too) would otherwise keep its bucket for the
            # life of the process; only buckets that are full again go, so no limit is lifted.
            full = self._burst * self._refill
            for owner in [k for k, (_, t) in self._per_object.items() if now - t >= full]:
                del self._per_object[owner]

    def _body(self, name: str, ref: ObjectRef, event: EventSpec, at: datetime) -> dict[str, Any]:
        stamp = rfc3339(at)
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
                "resourceVersion": ref.resource_version,
            },
            "reason": event.reason,
            "message": event.message,
            "type": event.type,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": COMPONENT, "host": self._host},
            "reportingComponent": REPORTING_COMPONENT,
            "reportingInstance": self._host,
        }
