"""LIST then WATCH one Kubernetes collection, in a thread: a minimal informer.

Contract:

- :meth:`Informer.start` starts a daemon thread that LISTs (paginated), then WATCHes from the
  list's ``resourceVersion`` with ``allowWatchBookmarks``; it keeps an in-memory cache of the
  objects by ``namespace/name`` and calls ``on_change(keys)`` from its thread with the keys an
  event (or a re-list) touched. The callback must only *mark* work (it runs on the watch
  thread); readers call :meth:`snapshot` — level-triggered, so a lost callback is healed by the
  next one or the periodic re-list.
- ``410 Gone`` (an ``ERROR`` event, or the HTTP status) means the resourceVersion is too old:
  re-list. A dropped connection (no terminating chunk, a reset, a read timeout) reconnects from
  the last resourceVersion seen (bookmarks keep it fresh) after a capped, jittered exponential
  backoff. Every ``resync_seconds`` (jittered by 10 %) the collection is re-listed anyway, which
  heals anything a watch could have missed. A watch is left once its ``timeoutSeconds`` and
  ``watch_grace`` have passed, even if the server (or a proxy) keeps it open and talking (events,
  bookmarks, or only keep-alive blank lines and spaces): its connection is closed, the leaving
  logged and counted (``overdue``), and the informer goes on as after a watch the server ended,
  so the re-list is never held off. A line longer than ``MAX_LINE`` bytes is a failed watch
  (reconnect after backoff), not memory without bound.
- ``list_fn`` answers the client's raw response (``_preload_content=False``, as for a watch):
  the informer reads a list page itself, as it comes, and gives it up (closing its connection)
  once ``list_seconds`` and the grace have passed, a failed list like any other (``last_error``
  says so, retried after the backoff): a body trickling a byte a second never trips the
  client's per-read timeout.
- A ``410`` re-lists at once only the first time after a watch that made progress (delivered an
  event or stayed open a while); a watch that keeps answering ``410`` right after a list that
  worked (a lagging watch cache, a broken proxy) re-lists after the backoff, which only such a
  watch resets, as client-go's reflector does.
- Watch events and list pages are read and decoded within the bounds of
  :mod:`reconciler.sources.kubernetes_wire`: a value an object nests more than
  ``MAX_DEPTH`` levels deep (the API server accepts 10 000 under
  ``x-kubernetes-preserve-unknown-fields``; Python's decoder fails near 1 000) is left out and
  replaced by ``PRUNED``, so one such object cannot fail the list or the watch: the object
  is cached, its resourceVersion is passed, and its readers see what was left out
  (``pruned_path``). A list item, or a watch event's object, that is no object with
  ``metadata`` is skipped (counted in ``malformed``, logged once for lists and once for
  watches), never a failed list or watch that every retry would fail again.
- A failed list or watch is retried after the backoff, each time a warning that names the
  informer (``informer``, and ``resource`` for a custom resource's) and the error as
  :mod:`reconciler.sources.kubernetes_watch_errors` says it: with the API server's message,
  bounded and printable, and for a custom resource's ``404`` the question whether its CRD is
  installed. ``last_error`` holds the same text until a list works or a watch is answered
  (``200``: not once that watch ends) again; ``failures`` counts on until a list works or a
  watch makes progress (an event, a bookmark counts, or more than a second open): a watch
  answered that fails at once (an ``ERROR`` event) is a failure more, not the first.
- The client is blocking; nothing here ever runs on the event loop. :meth:`stop` shuts the
  socket of the open watch, or of the list page being read, so the thread ends promptly.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, TypeGuard

from kubernetes.client.exceptions import ApiException

from reconciler.sources.kubernetes_watch_errors import describe, printable
from reconciler.sources.kubernetes_wire import (
    EVENT_DEPTH,
    PAGE_DEPTH,
    Overdue,
    decode,
    let_go,
    lines,
    read_body,
)

log = logging.getLogger("crontask.sources")

ListFn = Callable[..., Any]
OnChange = Callable[[set[str]], None]

PAGE = 500
GONE = 410
WATCH_GRACE = 30.0  # seconds a watch may outlast its timeoutSeconds (and a list page its read)
LIST_SECONDS = 60.0  # a list page's read timeout
# Seconds a stop waits, in all, for the watches' threads to end (the CronTask watch's and the
# Job watches' together: :func:`stop_all`). A thread still in a request the API server does not
# answer cannot be cut (no response yet) and is left to end on its own: it is a daemon.
STOP_WAIT = 5.0


class Backoff:
    """Capped exponential backoff with jitter (each delay uniform in [base/2, base])."""

    def __init__(self, initial: float = 0.2, cap: float = 30.0, factor: float = 2.0) -> None:
        self.initial, self.cap, self.factor = initial, cap, factor
        self.failures = 0

    def next(self) -> float:
        # The exponent is bounded first: factor ** failures overflows a float after about 1000
        # failures (8.5 hours at a 30 s cap), which would end the watch thread for good.
        base = min(self.cap, self.initial * self.factor ** min(self.failures, 64))
        self.failures += 1
        return random.uniform(base / 2, base)  # noqa: S311 - jitter, not security

    def reset(self) -> None:
        self.failures = 0


class _Expired(Exception):
    """The watch's resourceVersion is gone (410): re-list."""


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


class Informer:
    def __init__(
        self,
        list_fn: ListFn,
        *,
        on_change: OnChange,
        resync_seconds: float = 300.0,
        watch_seconds: float = 300.0,
        watch_grace: float = WATCH_GRACE,
        list_seconds: float = LIST_SECONDS,
        backoff: Backoff | None = None,
        name: str = "informer",
        resource: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._list_fn = list_fn
        # Said in the warnings (with ``name``), so two informers' lines are told apart.
        self.resource = resource
        self._on_change = on_change
        self.resync_seconds = resync_seconds
        self.watch_seconds = watch_seconds
        self.watch_grace = watch_grace
        self.list_seconds = list_seconds
        self._backoff = backoff or Backoff()
        self._name = name
        self._clock = clock  # seconds, monotonic: the re-list's due time, a watch's age
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, Any]] = {}
        self._rv: str | None = None
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._resp: Any = None
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.failing_since: datetime | None = None  # the first of the ``failures`` in a row
        self._failures = 0
        self.lists = 0
        self.expired = 0
        self.reconnects = 0
        self.bookmarks = 0
        self.overdue = 0  # watches left open past their timeoutSeconds and the grace
        self.malformed = 0  # list items and watch events skipped: no object with metadata
        self._told: set[str] = set()  # where a malformed one was logged: "list", "watch"
        self._delivered = 0  # events the current (or last) watch delivered

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, wait: float = 0.0) -> bool:
        """Start the thread; wait up to ``wait`` seconds for the first list. True if synced."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self._synced.wait(wait) if wait > 0 else self._synced.is_set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread; wait up to ``timeout`` seconds (``STOP_WAIT``) for it to end."""
        self._stop.set()
        self._close_response()
        if self._thread is not None:
            self._thread.join(STOP_WAIT if timeout is None else timeout)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    @property
    def failures(self) -> int:
        """Failed lists and watches in a row (module docstring); since ``failing_since``."""
        return self._failures

    @failures.setter
    def failures(self, count: int) -> None:
        if count == 0:
            self.failing_since = None
        elif self._failures == 0:
            self.failing_since = datetime.now(UTC)
        self._failures = count

    @property
    def resource_version(self) -> str | None:
        return self._rv

    def snapshot(self, keys: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
        """The cached objects (all, or those of ``keys`` that exist). Objects are replaced,
        never mutated, so the dicts may be read without the lock."""
        with self._lock:
            if keys is None:
                return dict(self._cache)
            return {k: self._cache[k] for k in keys if k in self._cache}

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        need_list = True
        next_resync = 0.0
        # 410s since the last watch that made progress: the first re-lists at once, the next
        # (the re-list worked, yet its watch is answered 410 again) back off first.
        gone = 0
        while not self._stop.is_set():
            began: float | None = None  # a watch was opened at
            try:
                if need_list or self._clock() >= next_resync:
                    self._list()
                    need_list = False
                    jitter = random.uniform(0.9, 1.1)  # noqa: S311 - spreads replicas' re-lists
                    next_resync = self._clock() + self.resync_seconds * jitter
                began = self._clock()
                self._watch(max(1.0, min(self.watch_seconds, next_resync - self._clock())))
                self.last_error = None
                if self._progressed(began):
                    self._backoff.reset()
                    self.failures = gone = 0
                else:  # a server that ends every watch at once must not make us spin
                    self._stop.wait(self._backoff.next())
            except Exception as err:
                if self._stop.is_set():
                    return
                if began is not None and self._progressed(began):
                    self._backoff.reset()
                    self.failures = gone = 0
                if isinstance(err, _Expired) or (
                    isinstance(err, ApiException) and err.status == GONE
                ):
                    self.expired += 1
                    need_list = True
                    gone += 1
                    if gone == 1:  # the watch's resourceVersion expired: re-list at once
                        log.info(
                            "watch expired (410); re-listing",
                            extra={"fields": {"at": self._rv, **self._who()}},
                        )
                        continue
                    # Answered 410 again with no progress between (a watch cache that lags
                    # the list, an expired continue token, a server that says nothing else):
                    # back off as for any other failure, and say so.
                self.failures += 1
                self.last_error = (
                    f"watch answered 410 {err}"
                    if isinstance(err, _Expired)
                    else describe(err, self.resource)
                )
                self.reconnects += 1
                delay = self._backoff.next()
                log.warning(
                    "kubernetes watch failed; retrying",
                    extra={
                        "fields": {
                            "error": self.last_error,
                            "in_seconds": round(delay, 2),
                            "failures": self.failures,
                            **self._who(),
                        }
                    },
                )
                self._stop.wait(delay)

    def _who(self) -> dict[str, str]:
        """The log fields that say which informer this is."""
        return {"informer": self._name, **({"resource": self.resource} if self.resource else {})}

    def _progressed(self, began: float) -> bool:
        """Whether the watch opened at ``began`` made progress: it delivered an event (a
        bookmark counts) or stayed open more than a second."""
        return self._delivered > 0 or self._clock() - began > 1.0

    def _list(self) -> None:
        items: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE}
            if token:
                kwargs["_continue"] = token
            page = self._page(kwargs)
            for obj in page.get("items") or []:
                if _is_object(obj):
                    items[object_key(obj)] = obj
                else:
                    self._skip("list", obj)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        with self._lock:
            before = self._cache
            self._cache = items
            self._rv = str(meta.get("resourceVersion") or "") or None
        changed = {
            k for k in set(before) | set(items) if _rv_of(before.get(k)) != _rv_of(items.get(k))
        }
        self.lists += 1
        self._synced.set()
        self.failures = 0
        self.last_error = None
        if changed:
            self._on_change(changed)

    def _page(self, kwargs: dict[str, Any]) -> Any:
        """One list page, decoded. The client's read timeout bounds each read, not the body: a
        body that trickles is given up (:class:`Overdue`) once the timeout and the grace have
        passed."""
        seconds = self.list_seconds + self.watch_grace
        leave = self._clock() + seconds
        resp = self._list_fn(
            **kwargs, _preload_content=False, _request_timeout=(10, self.list_seconds)
        )
        self._resp = resp
        read = False
        try:
            if self._stop.is_set():  # stop() came before the response: it could not cut it
                raise InterruptedError("stopped")
            body = read_body(resp, self._clock, leave, seconds)
            read = True
        finally:
            self._resp = None
            let_go(resp, read)
        return decode(body, PAGE_DEPTH)

    def _watch(self, seconds: float) -> int:
        """One watch request, until the server ends it or ``seconds`` and the grace have
        passed (a stream that never ends, bookmarks or keep-alives and all, must not hold off
        the re-list); returns how many events came."""
        leave = self._clock() + seconds + self.watch_grace
        self._delivered = 0
        resp = self._list_fn(
            watch=True,
            resource_version=self._rv,
            allow_watch_bookmarks=True,
            timeout_seconds=int(seconds),
            _preload_content=False,
            # The server ends the watch after timeout_seconds; reading longer than that plus
            # a margin means the connection is half-open: reconnect.
            _request_timeout=(10, seconds + self.watch_grace),
        )
        self._resp = resp
        # Answered (2xx; the client raises on any other): the API server is back. Said now,
        # not when this watch ends, up to timeoutSeconds later (an operator reading
        # /api/v1/sources would see an outage's error long past it). The failures count on
        # until it makes progress: one that fails at once is the same trouble again.
        self.last_error = None
        ended = False  # by the server: the connection may serve the next request
        try:
            if self._stop.is_set():
                return 0
            for line in lines(resp, deadline=leave, clock=self._clock):
                self._event(decode(line, EVENT_DEPTH))
                self._delivered += 1
                self.failures = 0  # progress (see _progressed), said as it comes
                if self._stop.is_set():
                    return self._delivered
            ended = not self._stop.is_set()
        except Overdue as err:
            self.overdue += 1
            self.reconnects += 1
            log.warning(
                "kubernetes watch left: still open past its timeoutSeconds and the grace",
                extra={"fields": {"error": str(err), "events": self._delivered, **self._who()}},
            )
        finally:
            self._resp = None
            let_go(resp, ended)
        return self._delivered

    def _event(self, event: Any) -> None:
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if kind == "ERROR":
            obj = obj if isinstance(obj, dict) else {}
            if obj.get("code") == GONE:
                raise _Expired(printable(f"{obj.get('reason')}: {obj.get('message')}"))
            raise RuntimeError(f"watch error: {obj.get('reason')}: {obj.get('message')}")
        if not _is_object(obj):
            self._skip("watch", obj if isinstance(event, dict) else event)
            return
        rv = obj["metadata"].get("resourceVersion")
        if kind == "BOOKMARK":
            self.bookmarks += 1
            if rv:
                self._rv = str(rv)
            return
        key = object_key(obj)
        with self._lock:
            if kind == "DELETED":
                self._cache.pop(key, None)
            else:
                self._cache[key] = obj
            if rv:
                self._rv = str(rv)
        self._on_change({key})

    def _skip(self, where: str, item: Any) -> None:
        """``item`` is no object with metadata: skipped; logged the first time, by its shape
        only (its text may be of any length)."""
        self.malformed += 1
        if where not in self._told:
            self._told.add(where)
            shape = type(item).__name__
            if isinstance(item, dict):
                shape += f" whose metadata is {type(item.get('metadata')).__name__}"
            log.warning(
                "kubernetes object skipped: not an object with metadata",
                extra={"fields": {"in": where, "shape": shape, **self._who()}},
            )

    def _close_response(self) -> None:
        resp = self._resp
        if resp is None:
            return
        with contextlib.suppress(Exception):
            resp.shutdown()  # urllib3 >= 2.3: unblocks a read in another thread


def stop_all(informers: Collection[Informer], timeout: float | None = None) -> None:
    """Stop ``informers`` together: each is told at once, and their threads are waited for
    ``timeout`` (``STOP_WAIT``) in all (one after the other, each waited for up to
    ``Informer.stop``'s timeout, a watch a namespace added as much to a stop whose API server
    does not answer)."""
    for informer in informers:
        informer.stop(0.0)
    deadline = time.monotonic() + (STOP_WAIT if timeout is None else timeout)
    for informer in informers:
        informer.stop(max(0.0, deadline - time.monotonic()))


def _is_object(obj: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(obj, dict) and isinstance(obj.get("metadata"), dict)


def _rv_of(obj: dict[str, Any] | None) -> str | None:
    return None if obj is None else (obj.get("metadata") or {}).get("resourceVersion")
