"""Calls to the run store that the API's threads wait for with a bound: a database that takes
connections and never answers (a table lock, a network that drops packets) must hold neither
a readiness probe (``StorePing``) nor a task list (``OneRead``), nor, as callers pile up, every
thread that serves the API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from reconciler.store.base import StoreUnavailable

T = TypeVar("T")

# A readiness probe waits this long for the store's answer; later, the store counts as down.
PING_TIMEOUT = 2.0
# An answer stands this long for the probes that follow it (seconds).
PING_REUSE = 1.0
# A task list waits this long for other replicas' last runs (ten times the read of a 5 001-task
# page from SQLite), then does not ask for LIST_READ_QUIET: a page's chunks do not each wait.
LIST_READ_WAIT = 1.0
LIST_READ_QUIET = 5.0


class StorePing:
    """Whether the store answers, asked of it at most once at a time, in a thread of its own,
    and waited for at most ``timeout`` seconds from when it was asked: a database that takes
    connections and never answers must neither hang a readiness probe nor, as probes pile
    up, take every thread that serves the API and /metrics. A ping that does not answer in
    time counts as down, and is not asked again before it ends; every caller meanwhile shares
    it, and an answer stands ``reuse`` seconds."""

    def __init__(
        self, ping: Callable[[], object], timeout: float = PING_TIMEOUT, reuse: float = PING_REUSE
    ) -> None:
        self._ping = ping
        self._timeout = timeout
        self._reuse = reuse
        self._lock = threading.Lock()
        self._asked: tuple[float, Future[bool]] | None = None  # the ping in flight
        self._answer: tuple[float, bool] | None = None  # the last one, and when it came

    def answers(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._answer is not None and now - self._answer[0] < self._reuse:
                return self._answer[1]
            if self._asked is None:
                self._asked = (now, Future())
                threading.Thread(
                    target=self._run, args=(self._asked[1],), name="crontask-ping", daemon=True
                ).start()  # a daemon: one that never returns does not hold up the exit
            asked_at, answer = self._asked
        try:
            return answer.result(timeout=max(0.0, asked_at + self._timeout - now))
        except TimeoutError:
            return False

    def _run(self, answer: Future[bool]) -> None:
        ok = False
        try:
            self._ping()
            ok = True
        except Exception:
            ok = False
        finally:  # whatever ends it: the next caller may ask again
            with self._lock:
                self._answer = (time.monotonic(), ok)
                self._asked = None
            answer.set_result(ok)


class OneRead:
    """Store reads one at a time, each in a daemon thread, waited for ``wait`` seconds at most
    (a store that does not answer holds that thread, not the caller). One that fails (Store-
    Unavailable) or is late makes calls answer None at once for ``quiet`` seconds, as does one
    still going past its wait: a store that hangs holds one thread, not one a call. A call that
    finds a read going in time waits its turn; a read that answers late ends the quiet."""

    def __init__(self, wait: float, quiet: float) -> None:
        self._wait, self._quiet = wait, quiet
        self._turn = threading.BoundedSemaphore(1)  # held by a read's thread until it ends
        # Each set in one assignment, read once a call: no lock (a race is a quiet a moment off).
        self._since: float | None = None  # when the read going began
        self._quiet_until = 0.0

    def down(self) -> bool:
        return time.monotonic() < self._quiet_until

    def __call__(self, read: Callable[[], T]) -> T | None:
        start, since = time.monotonic(), self._since
        if since is not None and start - since >= self._wait:  # still going: not waited for
            self._quiet_until = max(self._quiet_until, start + self._quiet)
        if self.down() or not self._turn.acquire(timeout=self._wait):
            return None  # a read before took all this wait: its caller marks the quiet
        answer: Future[T] = Future()
        self._since = time.monotonic()
        try:
            threading.Thread(target=self._run, args=(read, answer), daemon=True).start()
        except RuntimeError:  # no thread to be had (a host out of them): this call reads not
            self._since = None
            self._turn.release()
            return None
        try:
            return answer.result(timeout=max(0.0, start + self._wait - time.monotonic()))
        except (TimeoutError, StoreUnavailable):
            self._quiet_until = time.monotonic() + self._quiet
            return None

    def _run(self, read: Callable[[], T], answer: Future[T]) -> None:
        try:
            answer.set_result(read())
        except BaseException as err:  # the caller's to raise (or to count as down)
            answer.set_exception(err)
        self._since = None
        if answer.exception() is None:
            self._quiet_until = 0.0  # the store answers, if late
        self._turn.release()  # after ``_since``: the next read sets its own
