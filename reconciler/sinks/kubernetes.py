"""Writing CronTask status back through the ``/status`` subresource.

Contract:

- :meth:`StatusWriter.submit` is non-blocking and thread-safe: it hands over *how* to compute
  the wanted status (a function of the stored status) for one object. Worker threads do the
  HTTP calls; nothing here runs on the event loop.
- Coalescing: per object at most one request is in flight and only the newest submission is
  kept (in the place of the first, so an object whose status keeps changing keeps its turn), so
  a burst of updates becomes one or two writes.
- Order: an ``urgent`` submission (a run-now value to record: a person is waiting, and the run
  starts only once it is written) goes before every other; then the namespaces take turns, each
  its own objects in the order they came, so that thousands of objects created in one
  namespace do not hold back the status of another's.
- ``written``, a callback given with a submission, is called once, on a worker thread, when the
  submission is done with: with the merge patch of the write the API server accepted (this
  submission's, or a newer one's for the same object that replaced it), or with None when no
  write was made (nothing differed, the object is gone or is another one now, the write was
  refused). It is not called for a submission that :meth:`StatusWriter.forget` drops or that
  is still waiting when the writer stops.
- A write is a JSON merge patch of exactly the fields that differ, computed from the status
  at a known ``resourceVersion`` and carrying that version (``metadata.resourceVersion``), so
  the API server refuses it with ``409 Conflict`` when anyone wrote the object meanwhile:
  then the object is re-read and the status computed again against the fresh one. When nothing
  differs, nothing is sent (no write, no watch event, no loop with our own watch).
- The base of a write is the newer of two views: the writer's own (the object its last write
  returned, or its last re-read) and the informer's (``ObjectRef``); a cached view never hides a
  newer object the watch has delivered.
- Writes share one token bucket (``qps``/``burst``), so many objects cannot flood the API
  server. ``429``/``5xx``/connection errors retry with capped backoff; after ``attempts`` of
  them the object waits ``max_backoff`` and is tried again (logged with the last attempt's
  error: ``error="HTTP 503: Service Unavailable"``; a newer submission replaces it),
  for as long as the API server keeps failing, so that a status that changed during an outage
  is written once it is over, not at the task's next change. An outage costs one pending entry
  per object and the fixed worker threads, however long it lasts. A ``404`` that names the
  object (deleted) drops it. One that does not (no such path served: a handler not ready yet,
  as for a few seconds after an API server restart; or no CRD, or one without ``/status``) is
  retried for one round of ``attempts`` unless a read says the object is gone; a round that
  ends so drops the write (``written`` gets None) with a warning naming the fix (apply
  crontask's CRD): an old CRD costs a round a write, not requests without end. Once ``stop``
  has begun, such a write is dropped at once, not waited for. Another refusal is logged
  (naming what it lacked: ``crontasks/status: patch in namespace X``) and dropped. Both
  warnings come once per kind every ``REFUSAL_EVERY`` seconds, with how many were held back
  since (``suppressed``), as refused Events are (:mod:`reconciler.sinks.refusals`). The status
  is never written through the main resource, so it can never bump ``metadata.generation``
  (:mod:`reconciler.sinks.kubernetes_status`).
- After a ``409`` (or such a ``404``) the object is read again, that read taking its token too:
  computed again on what was read, at once (after a ``404``: after the backoff); if it could
  not be read (``429``/``5xx``/connection error), the next attempt comes after the usual
  backoff, never at once on the same stale version.
- With replicas: nothing is written while ``held`` (this replica is fenced: the tasks it
  reports may be another's by now); what is submitted meanwhile waits, coalesced, and goes out
  once it may write again. A write is sent only while ``owns`` its task, asked just before each
  request: one queued before a handover is dropped (``written`` gets None), never written over
  the new owner's status.
- :meth:`StatusWriter.forget` leaves nothing of the object behind, even while a write of it is
  in flight: that write's end neither remembers the object nor queues it again.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from reconciler.core.crd import PLURAL
from reconciler.core.model import API_GROUP
from reconciler.core.status import ObjectRef, merge_patch
from reconciler.sinks.kubernetes_refusals import CRD_FIX, names_object
from reconciler.sinks.kubernetes_status import RETRIED, Read, Seen, StatusApi, newer, said
from reconciler.sinks.refusals import RefusalLog, refusal
from reconciler.sinks.token_bucket import TokenBucket

log = logging.getLogger("crontask.sinks")

# Why an attempt failed when the server serves no /status for it (said in a warning of its own).
UNSERVED = "HTTP 404: the CronTask CRD is missing or has no status subresource"
UNSERVED_SAID = (
    "status not written: the CronTask CRD is missing or has no status subresource,"
    " or the API server does not serve it yet"
)

Build = Callable[[Mapping[str, Any]], dict[str, Any]]
# Called with the merge patch a write applied, or None if none was made (see the docstring).
Written = Callable[[Mapping[str, Any] | None], None]


class _Next(enum.Enum):
    """What a write does after one request."""

    DONE = "done"  # the submission is done with (or the writer is stopping)
    AGAIN = "again"  # at once: the object was read again after a conflict
    LATER = "later"  # after the backoff


class StatusWriter:
    def __init__(
        self,
        api: Any,
        *,
        qps: float = 20.0,
        burst: int = 20,
        workers: int = 4,
        attempts: int = 6,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self._api = StatusApi(api)
        self._bucket = TokenBucket(qps, burst)
        self._workers = workers
        self._attempts = attempts
        self._backoff, self._max_backoff = backoff, max_backoff
        self._cond = threading.Condition()
        # namespace -> key -> submission; both in turn order (a namespace served goes last).
        self._queues: dict[str, dict[str, _Submission]] = {}
        self._urgent: dict[str, None] = {}  # keys whose pending submission is urgent, in order
        self._inflight: set[str] = set()
        # Keys forgotten while their write was in flight (and not submitted since): that
        # write's end must not remember them again, nor queue them again.
        self._forgotten: set[str] = set()
        self._not_before: dict[str, float] = {}  # keys waiting after failed attempts: until when
        # The object as our last write or read returned it.
        self._known: dict[str, Seen] = {}
        self._refusals = RefusalLog()  # a refused write comes again with each: said once a while
        self._stop = threading.Event()
        self._stopping = threading.Event()  # stop() has begun: an unserved /status is not retried
        self._threads: list[threading.Thread] = []
        # With replicas (set by the wiring; asked on the worker threads): whether this replica
        # may write no status now (fenced), and whether a task is still its own.
        self.held: Callable[[], bool] = lambda: False
        self.owns: Callable[[str], bool] = lambda key: True
        self.writes = 0
        self.skipped = 0  # nothing differed
        self.conflicts = 0
        self.failures = 0

    def start(self) -> None:
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"status-writer-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(
        self,
        ref: ObjectRef,
        build: Build,
        *,
        urgent: bool = False,
        written: Written | None = None,
    ) -> None:
        """Queue ``build`` for the object of ``ref`` (see the module docstring)."""
        with self._cond:
            self._forgotten.discard(ref.key)
            self._put(_Submission(ref, build, urgent, [written] if written else []))
            self._cond.notify()

    def forget(self, key: str) -> None:
        with self._cond:
            self._pop(key)
            self._known.pop(key, None)
            self._not_before.pop(key, None)
            if key in self._inflight:
                self._forgotten.add(key)

    def idle(self) -> bool:
        with self._cond:
            return not self._waiting()

    def flush(self, timeout: float) -> bool:
        """Wait until every submission is written (or given up, or ``held``: those wait for
        no one); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._waiting():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is pending, then stop the workers: ``timeout`` bounds the whole of it
        (the stop budget counts it, not more). A worker still in a request the API server
        holds is not waited for past it: a daemon thread, it ends with the process."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    # -- workers ---------------------------------------------------------------------------

    # The queues are only touched with ``_cond`` held.

    def _waiting(self) -> bool:
        """Whether a write is in flight, or queued and free to go."""
        return bool(self._inflight) or (bool(self._queues) and not self.held())

    def _put(self, submission: _Submission) -> None:
        """Queue ``submission``; a pending one for the same object keeps its place and is
        replaced (the newest build wins), its callbacks and urgency kept."""
        key = submission.ref.key
        queue = self._queues.setdefault(submission.ref.namespace, {})
        pending = queue.get(key)
        if pending is not None:
            submission.absorb_older(pending)
        queue[key] = submission
        if submission.urgent:
            self._urgent[key] = None

    def _pop(self, key: str) -> _Submission | None:
        namespace = key.partition("/")[0]
        queue = self._queues.get(namespace)
        submission = queue.pop(key, None) if queue is not None else None
        if queue is not None and not queue:
            del self._queues[namespace]
        self._urgent.pop(key, None)
        return submission

    def _choose(self, now: float) -> str | None:
        """The key to write next (see Order in the module docstring), or None."""

        def free(key: str) -> bool:
            return key not in self._inflight and self._not_before.get(key, now) <= now

        for key in self._urgent:
            if free(key):
                return key
        for namespace, queue in self._queues.items():
            for key in queue:
                if free(key):
                    # This namespace has had its turn: the others go before its next.
                    self._queues[namespace] = self._queues.pop(namespace)
                    return key
        return None

    def _next(self) -> _Submission | None:
        with self._cond:
            while not self._stop.is_set():
                key = None if self.held() else self._choose(time.monotonic())
                if key is not None:
                    submission = self._pop(key)
                    assert submission is not None
                    self._inflight.add(key)
                    return submission
                self._cond.wait(0.5)
        return None

    def _done(self, key: str) -> None:
        with self._cond:
            self._inflight.discard(key)
            self._forgotten.discard(key)
            self._cond.notify_all()

    def _work(self) -> None:
        while (submission := self._next()) is not None:
            key = submission.ref.key
            try:
                self._write(submission)
            except Exception:
                self.failures += 1
                log.exception("status write failed", extra={"fields": {"task": key}})
                _notify(submission, None)
            finally:
                self._done(key)

    def _newer(self, submission: _Submission) -> None:
        """A submission that arrived while this key was in flight replaces ours (its build
        and object; the callbacks of both wait for the write)."""
        with self._cond:
            newer = self._pop(submission.ref.key)
        if newer is not None:
            submission.absorb_newer(newer)

    def _write(self, submission: _Submission) -> None:
        key = submission.ref.key
        delay = self._backoff
        for _ in range(self._attempts):
            self._newer(submission)
            ref, build = submission.ref, submission.build
            base = self._base(ref)
            current = dict(base.status)
            patch = merge_patch(current, build(current))
            if not patch:
                self.skipped += 1
                self._remember(key, base)
                self._settled(submission, None)
                return
            if not self._bucket.take(self._stop):
                return
            # Just before the request: fenced since it was queued, the task moved, or forgotten.
            if self.held():
                self._put_back(submission)
                return
            if not self.owns(key) or key in self._forgotten:
                self._settled(submission, None)
                return
            step = self._send(submission, base, patch)
            if step is _Next.DONE:
                return
            if step is _Next.AGAIN:
                continue  # at once: the fresh state is what the next attempt works on
            # /status not served: stopping does not wait for it to come (stop sets _stopping
            # before _stop), it drops the write as a round that ran out would.
            unserved = submission.error == UNSERVED
            if (self._stopping if unserved else self._stop).wait(
                random.uniform(delay / 2, delay)  # noqa: S311 - jitter
            ):
                if unserved:
                    break
                return
            delay = min(self._max_backoff, delay * 2)
        self.failures += 1
        if submission.error == UNSERVED:
            self._unserved(submission)
        else:
            self._retry_later(submission)

    def _send(self, submission: _Submission, base: Seen, patch: dict[str, Any]) -> _Next:
        """One write of ``patch``, computed on ``base``, and what comes of it."""
        ref = submission.ref
        try:
            answer = self._api.patch(ref, base.resource_version, patch)
        except ApiException as err:
            if err.status == 404 and names_object(err, ref.name):
                self._settled(submission, None, gone=True)
                return _Next.DONE
            if err.status == 409:
                self.conflicts += 1
            if err.status in (404, 409):
                return self._reread(submission, err)
            if err.status not in RETRIED:
                self._refused(submission, err, "patch")
                return _Next.DONE
            submission.error = said(err)
            return _Next.LATER
        except Exception as err:  # connection refused, reset, timeout
            submission.error = said(err)
            log.debug("status write error", extra={"fields": {"task": ref.key, "error": err}})
            return _Next.LATER
        self.writes += 1
        self._remember(
            ref.key, answer or Seen(ref.uid, base.resource_version, {**base.status, **patch})
        )
        self._settled(submission, patch)
        return _Next.DONE

    def _reread(self, submission: _Submission, err: ApiException) -> _Next:
        """The object read again after a write answered ``err``, a ``409`` or a ``404`` that
        does not name it (a request like any other: it takes its token). Deleted, or deleted
        and created again under the same name: this status was the old object's (the new one
        gets its own), so the write is dropped. Else, after a ``409`` it is computed again at
        once on what was read; after a ``404`` (read, or not served either: no CRD, or its
        handler not ready yet) tried again after the backoff, to land once /status is served."""
        ref = submission.ref
        submission.error = said(err)
        if not self._bucket.take(self._stop):
            return _Next.DONE
        reading = self._api.read(ref)
        if reading.outcome is Read.GONE:
            self._settled(submission, None, gone=True)
            return _Next.DONE
        if reading.error is not None:  # refused
            self._refused(submission, reading.error, "get")
            return _Next.DONE
        if reading.outcome is Read.FRESH:
            assert reading.seen is not None
            self._remember(ref.key, reading.seen)
            if err.status == 409:
                return _Next.AGAIN
        if reading.outcome is Read.FAILED:
            # Not read: the version we hold may be stale, so an attempt at once would only
            # conflict again. Wait as after any failed request.
            submission.error += ", and the read after it failed"
            log.debug("status read after a write failed", extra={"fields": {"task": ref.key}})
        else:  # read, but its /status not served; or not served either
            submission.error = UNSERVED
        return _Next.LATER

    def _refused(self, submission: _Submission, err: ApiException, verb: str) -> None:
        self.failures += 1
        ref = submission.ref
        suppressed = self._refusals.due((verb, ref.namespace, err.status))
        if suppressed is not None:
            fields = {"task": ref.key, **refusal(err, f"{PLURAL}/status: {verb}", ref.namespace)}
            log.warning(
                "status write refused", extra={"fields": {**fields, "suppressed": suppressed}}
            )
        self._settled(submission, None)

    def _unserved(self, submission: _Submission) -> None:
        """A round of attempts ended on a ``404`` that did not name the object (no ``/status``
        served: see the module docstring): the write is dropped, as retried for ever it would
        cost requests without end, and a run-now withdrawn meanwhile would start once the CRD
        is fixed, hours later. It comes with every object's write: said once a while."""
        ref = submission.ref
        suppressed = self._refusals.due("no status subresource")
        if suppressed is not None:
            fields = {"task": ref.key, "crd": f"{PLURAL}.{API_GROUP}", "fix": CRD_FIX}
            log.warning(UNSERVED_SAID, extra={"fields": {**fields, "suppressed": suppressed}})
        self._settled(submission, None)

    def _remember(self, key: str, seen: Seen) -> None:
        """Keep ``seen`` as our view of the object of ``key``, unless it was forgotten since
        its write began (that would be an entry no one removes)."""
        with self._cond:
            if key not in self._forgotten:
                self._known[key] = seen

    def _settled(
        self, submission: _Submission, patch: dict[str, Any] | None, *, gone: bool = False
    ) -> None:
        """``submission`` is over: written (``patch``), or not to be written (None); ``gone``:
        the object is gone, or another one has its name (what is known of it goes too)."""
        key = submission.ref.key
        with self._cond:
            if gone:
                self._known.pop(key, None)
            self._not_before.pop(key, None)
        _notify(submission, patch)

    def _put_back(self, submission: _Submission, not_before: float | None = None) -> None:
        """Queue ``submission`` again (a newer one, if any, wins), to go ``not_before``; not if
        its object was forgotten meanwhile."""
        key = submission.ref.key
        with self._cond:
            if key in self._forgotten:
                return
            newer = self._pop(key)
            if newer is not None:
                submission.absorb_newer(newer)
            self._put(submission)
            if not_before is not None:
                self._not_before[key] = not_before

    def _retry_later(self, submission: _Submission) -> None:
        """The API server keeps failing: try again later (a newer submission, if any, wins),
        rather than leave a stale status until the task's next change."""
        key = submission.ref.key
        self._put_back(submission, time.monotonic() + self._max_backoff)
        log.warning(
            "status write failed; retrying",
            extra={
                "fields": {"task": key, "in_seconds": self._max_backoff, "error": submission.error}
            },
        )

    def _base(self, ref: ObjectRef) -> Seen:
        """The newer of our own view of the object and the informer's."""
        informer = Seen(ref.uid, ref.resource_version, dict(ref.status))
        known = self._known.get(ref.key)
        if known is None or known.uid != ref.uid:
            return informer
        return known if newer(known.resource_version, ref.resource_version) else informer


@dataclasses.dataclass(slots=True)
class _Submission:
    """What to write for one object, and whom to tell once it is written."""

    ref: ObjectRef
    build: Build
    urgent: bool
    written: list[Written]
    # Why its last attempt failed (``_retry_later`` says it): each one's answer is otherwise
    # only logged at debug, and "failed; retrying" alone leaves an operator guessing.
    error: str | None = None

    def absorb_older(self, older: _Submission) -> None:
        """``older`` was pending: this one replaces it, and takes its callbacks and urgency."""
        self.urgent = self.urgent or older.urgent
        self.written[:0] = older.written

    def absorb_newer(self, newer: _Submission) -> None:
        """``newer`` came meanwhile: its build and object replace ours."""
        self.ref, self.build = newer.ref, newer.build
        self.urgent = self.urgent or newer.urgent
        self.written.extend(newer.written)


def _notify(submission: _Submission, patch: Mapping[str, Any] | None) -> None:
    """Call the submission's callbacks, once: with the patch written, None if none was."""
    callbacks, submission.written = submission.written, []
    for callback in callbacks:
        try:
            callback(patch)
        except Exception:
            log.exception("status write callback failed")
