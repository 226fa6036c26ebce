"""core/v1 Events about CronTask objects, aggregated and rate-limited like client-go's.

Contract:

- :meth:`EventRecorder.emit` is non-blocking and thread-safe; a worker thread talks to the
  API server. When the queue is full, events are dropped (Events are best-effort by design).
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
  (``suppressed``), as refused status writes are (:mod:`reconciler.sinks.kubernetes_refusals`).
- An Event that gets no answer (the API server unreachable: connection refused or reset, a
  timeout) is kept: queued again, behind the others, and tried again ``retry_seconds`` later,
  ``retries`` times at most (client-go's recorder: 12 times, 10 s apart), under the queue's
  bound; then it is dropped (counted in ``dropped``). Its create keeps its name, so a create
  whose answer was lost is not made twice. It is logged as the refusals are, one warning line
  with the error in a few words (and one for those given up), once per namespace every
  ``REFUSAL_EVERY`` seconds, with ``suppressed``. While the server is unreachable,
  :meth:`EventRecorder.flush` does not wait (nor does a stop: what is queued is not sent).
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
from reconciler.sinks.kubernetes import said
from reconciler.sinks.kubernetes_refusals import RefusalLog, refusal
from reconciler.sinks.kubernetes_status import MERGE_PATCH
from reconciler.sinks.token_bucket import TokenBucket

log = logging.getLogger("crontask.sinks")

# As client-go's EventAggregator: past this many different messages of one object, type and
# reason within the window, they are one Event.
SIMILAR = 10
COMBINED = "(combined from similar events): "

# What a request that got no answer raises (urllib3's MaxRetryError, ProtocolError, timeouts
# are HTTPErrors; a socket's own error may come through as it is).
UNANSWERED = (urllib3.exceptions.HTTPError, OSError)

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
    send; queued again, as it is, while the API server does not answer."""

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
        # By (verb, namespace, status), ("unreachable", namespace), ("failed", error type).
        self._refusals = RefusalLog()
        self._queue: queue.Queue[tuple[ObjectRef, EventSpec, datetime] | _Send | None] = (
            queue.Queue(queue_size)
        )
        # Set while the last request got no answer: a flush does not wait for the queue.
        self._unreachable = threading.Event()
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
        if not self.flush(timeout) and (left := self._queue.qsize()):
            self.dropped += left  # not sent: the thread ends at its next item
            log.warning("events not sent at stop", extra={"fields": {"events": left}})
        self._stop.set()
        # Not a wait for room: a queue still full is behind a request that may be held (30 s
        # each); the thread sees ``_stop`` when it takes its next item.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to be sent; False if it was not (at
        once while the API server does not answer: its Events wait for their retries)."""
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

    # -- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None or self._stop.is_set():  # what is left after a stop: dropped
                    return
                send = item if isinstance(item, _Send) else self._admit(*item)
                if send is not None and self._overall.take(self._stop):
                    self._send(send)
            except Exception as err:
                self._failed(err)
            finally:
                self._queue.task_done()

    def _admit(self, ref: ObjectRef, event: EventSpec, at: datetime) -> _Send | None:
        """Let an Event through its object's spam filter (None: dropped), and choose what it
        aggregates with: once, whatever becomes of its requests."""
        owner = ref.uid or ref.key
        used = self._per_object.get(owner)
        bucket = used[0] if used else TokenBucket(1.0 / self._refill, self._burst)
        self._per_object[owner] = (bucket, time.monotonic())
        if not bucket.try_take():
            self.dropped += 1
            return None
        key: tuple[str, str, str, str | None] = (owner, event.type, event.reason, event.message)
        if self._combined(owner, event, time.monotonic()):
            event = dataclasses.replace(event, message=COMBINED + event.message)
            key = (owner, event.type, event.reason, None)
        name = f"{ref.name}.{time.time_ns():x}"  # as client-go names them
        return _Send(ref, event, at, key, name)

    def _send(self, send: _Send) -> None:
        try:
            self._record(send)
        except UNANSWERED as err:
            self._no_answer(send, err)
        else:
            self._unreachable.clear()

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
                    _request_timeout=(10, 30),
                )
            except ApiException as err:
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
            self._core.create_namespaced_event(ref.namespace, event_body, _request_timeout=(10, 30))
        except ApiException as err:
            # A try before this one was created, its answer lost (same name): recorded.
            if not (err.status == 409 and send.tries):
                self._refused(err, "create", ref.namespace)
                return
        self._seen[key] = _Seen(send.name, 1, now)
        self.created += 1
        self._expire(now)

    def _no_answer(self, send: _Send, err: Exception) -> None:
        """No answer from the API server: ``send`` is queued again (if it has tries left and
        the queue room), and the worker waits ``retry_seconds`` (every queued Event would
        fail alike meanwhile); logged once per namespace every REFUSAL_EVERY seconds, and
        once for those given up."""
        self._unreachable.set()
        if self._stop.is_set():  # a request cut by the stop, or unanswered past it: not sent
            return
        send.tries += 1
        kept = send.tries <= self.retries
        if kept:
            try:
                self._queue.put_nowait(send)
                self.retried += 1
            except queue.Full:
                kept = False
        if not kept:
            self.dropped += 1
        since = self._refusals.due(("unreachable", send.ref.namespace, kept))
        if since is not None:
            fields = {"namespace": send.ref.namespace, "error": said(err), "tries": send.tries}
            if kept:
                fields["in_seconds"] = self.retry_seconds
            log.warning(
                "event not sent: no answer from the API server; retrying"
                if kept
                else "event not recorded: no answer from the API server",
                extra={"fields": {**fields, "suppressed": since}},
            )
        self._stop.wait(self.retry_seconds)

    def _failed(self, err: Exception) -> None:
        """A failure of no known kind (a bug): logged with its traceback, once per kind of
        error every REFUSAL_EVERY seconds; the Event is not recorded."""
        self.dropped += 1
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
