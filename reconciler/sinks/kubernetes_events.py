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

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.core.run_events import EventSpec
from reconciler.core.status import ObjectRef, rfc3339
from reconciler.sinks.kubernetes_refusals import RefusalLog, refusal
from reconciler.sinks.kubernetes_status import MERGE_PATCH
from reconciler.sinks.token_bucket import TokenBucket

log = logging.getLogger("crontask.sinks")

# As client-go's EventAggregator: past this many different messages of one object, type and
# reason within the window, they are one Event.
SIMILAR = 10
COMBINED = "(combined from similar events): "

COMPONENT = "crontask"
REPORTING_COMPONENT = "crontask.dev/crontask"


@dataclasses.dataclass
class _Seen:
    name: str
    count: int
    last: float  # monotonic


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
        self._refusals = RefusalLog()  # by (verb, namespace, status)
        self._queue: queue.Queue[tuple[ObjectRef, EventSpec, datetime] | None] = queue.Queue(
            queue_size
        )
        self._host = instance or socket.gethostname()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.created = 0
        self.patched = 0
        self.dropped = 0
        self.refused = 0

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
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
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
                self._record(*item)
            except Exception:
                log.exception("event not recorded")
            finally:
                self._queue.task_done()

    def _record(self, ref: ObjectRef, event: EventSpec, at: datetime) -> None:
        owner = ref.uid or ref.key
        used = self._per_object.get(owner)
        bucket = used[0] if used else TokenBucket(1.0 / self._refill, self._burst)
        self._per_object[owner] = (bucket, time.monotonic())
        if not bucket.try_take():
            self.dropped += 1
            return
        if not self._overall.take(self._stop):
            return
        now = time.monotonic()
        key: tuple[str, str, str, str | None] = (owner, event.type, event.reason, event.message)
        body: dict[str, Any] = {}
        if self._combined(owner, event, now):
            event = dataclasses.replace(event, message=COMBINED + event.message)
            key, body = (owner, event.type, event.reason, None), {"message": event.message}
        seen = self._seen.get(key)
        if seen is not None and now - seen.last <= self.window:
            body.update(count=seen.count + 1, lastTimestamp=rfc3339(at))
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
        name = f"{ref.name}.{time.time_ns():x}"  # as client-go names them
        event_body: Any = self._body(name, ref, event, at)  # the client takes a plain dict
        try:
            self._core.create_namespaced_event(ref.namespace, event_body, _request_timeout=(10, 30))
        except ApiException as err:
            self._refused(err, "create", ref.namespace)
            return
        self._seen[key] = _Seen(name, 1, now)
        self.created += 1
        self._expire(now)

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
