"""Calls to the run store that the API's threads wait for with a bound: a database that takes
connections and never answers (a table lock, a network that drops packets) must hold neither
a readiness probe (``StorePing``) nor a read an answer is made of (``OneRead``: the task list,
one task, the status page's pages), nor, as callers pile up, every thread that serves the API.
Those reads share one ``OneRead`` a store (``reads_of``): one read the store holds keeps the
others from asking it, wherever they come from."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from reconciler.store.base import StoreUnavailable

T = TypeVar("T")

# A readiness probe waits this long for the store's answer; later, the store counts as down.
PING_TIMEOUT = 2.0
# An answer stands this long for the probes that follow it (seconds).
PING_REUSE = 1.0
# A read an answer is made of (``reads_of``) is waited for this long (ten times the task list's
# read of a 5 001-task page's last runs from SQLite); past it, or when it failed, the store is
# not asked for LIST_READ_QUIET: a page's chunks, or its rows, do not each wait.
LIST_READ_WAIT = 1.0
LIST_READ_QUIET = 5.0
# A page of runs a caller asks for (the API's runs, one run's attempts, a task's history with
# its filters): its cost grows with the question (a rare status in a long history is read
# through), so it is waited for longer; a table locked still holds it no longer than this.
PAGE_READ_WAIT = 10.0
# The reads of ``reads_of`` going at once: as many as the SQL store serves its bulk reads
# (one slow page, a history of a million runs, does not hold every other), and what a store
# that hangs holds of this process's threads.
READS_AT_ONCE = 4


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
            asked_at, answer = self._ask(now)
        try:
            return answer.result(timeout=max(0.0, asked_at + self._timeout - now))
        except TimeoutError:
            return False

    def seen(self) -> bool | None:
        """``answers`` without waiting, for a scrape: the last answer, and the store asked
        again (as ``answers`` asks it) when that answer is older than ``reuse``, for the next
        caller to see; so it is as old as the caller before it, at most. A ping asked
        ``timeout`` or more ago that has not answered is down, as ``answers`` says. None: no
        ping has answered yet (the first is on its way)."""
        with self._lock:
            now = time.monotonic()
            if self._answer is not None and now - self._answer[0] < self._reuse:
                return self._answer[1]
            asked_at, _ = self._ask(now)
            if now - asked_at >= self._timeout:
                return False
            return None if self._answer is None else self._answer[1]

    def _ask(self, now: float) -> tuple[float, Future[bool]]:
        """The ping in flight, asked now if there is none (under the lock)."""
        if self._asked is None:
            self._asked = (now, Future())
            threading.Thread(
                target=self._run, args=(self._asked[1],), name="crontask-ping", daemon=True
            ).start()  # a daemon: one that never returns does not hold up the exit
        return self._asked

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
    """Store reads ``at_once`` at a time at most, each in a daemon thread, waited for ``wait``
    seconds at most (a store that does not answer holds that thread, not the caller). One that
    fails (StoreUnavailable) or is late makes calls answer None at once for ``quiet`` seconds,
    as do ``at_once`` reads all still going, one of them past its wait: a store that hangs
    holds ``at_once`` threads, not one a call. A call that finds every turn taken waits for
    one; a read that answers late ends the quiet. ``answer``: the same, for a caller that
    tells the store's absence (StoreUnavailable) from its answer None."""

    def __init__(self, wait: float, quiet: float, at_once: int = 1) -> None:
        self._wait, self._quiet, self._at_once = wait, quiet, at_once
        self._turn = threading.BoundedSemaphore(at_once)  # one held by each read until it ends
        self._going: dict[Future[Any], float] = {}  # each read going: when it began
        self._going_lock = threading.Lock()
        # Set in one assignment, read once a call: no lock (a race is a quiet a moment off).
        self._quiet_until = 0.0

    def _held_since(self) -> float | None:
        """When the oldest read began, if every turn is taken: else None (a turn is free)."""
        with self._going_lock:
            if len(self._going) < self._at_once:
                return None
            return min(self._going.values())

    def down(self) -> bool:
        return time.monotonic() < self._quiet_until

    def __call__(
        self, read: Callable[[], T], late: Callable[[T], object] | None = None
    ) -> T | None:
        try:
            return self.answer(read, late)
        except _Unanswered:
            return None
        except StoreUnavailable:
            self._quiet_until = time.monotonic() + self._quiet
            return None

    def answer(self, read: Callable[[], T], late: Callable[[T], object] | None = None) -> T:
        """``read``'s answer; StoreUnavailable when the store is not asked (quiet, or its turn
        not come within the wait), did not answer within it, or failed. A failure of the read
        itself leaves no quiet here (``__call__`` makes one): the caller has nothing else to
        show, and a store that fails at once is asked again at no cost, its return seen as
        soon as it is back. ``late``: given the answer of a read not waited for to its end,
        on the read's thread, so that a read that always takes longer than the wait is not
        made again and again for nothing."""
        start, since = time.monotonic(), self._held_since()
        if since is not None and start - since >= self._wait:  # still going: not waited for
            self._quiet_until = max(self._quiet_until, start + self._quiet)
        if self.down():
            raise _Unanswered("a read of the run store did not answer: it is not asked for now")
        if not self._turn.acquire(timeout=self._wait):
            # A read before took all this wait: its caller marks the quiet.
            raise _Unanswered(f"the run store's reads took over {self._wait:g} s")
        answer: Future[T] = Future()
        with self._going_lock:
            self._going[answer] = time.monotonic()
        try:
            threading.Thread(
                target=self._run, args=(read, answer), name="crontask-store-read", daemon=True
            ).start()
        except RuntimeError:  # no thread to be had (a host out of them): this call reads not
            self._ended(answer)
            raise _Unanswered("no thread to read the run store in") from None
        try:
            return answer.result(timeout=max(0.0, start + self._wait - time.monotonic()))
        except TimeoutError:
            self._quiet_until = time.monotonic() + self._quiet
            if late is not None:
                answer.add_done_callback(lambda done: _deliver(done, late))
            raise _Unanswered(f"the run store did not answer in {self._wait:g} s") from None

    def _run(self, read: Callable[[], T], answer: Future[T]) -> None:
        try:
            answer.set_result(read())
        except BaseException as err:  # the caller's to raise (or to count as down)
            answer.set_exception(err)
        if answer.exception() is None:
            self._quiet_until = 0.0  # the store answers, if late
        self._ended(answer)

    def _ended(self, answer: Future[Any]) -> None:
        with self._going_lock:
            del self._going[answer]
        self._turn.release()  # after ``_going``: the next read adds its own


def _deliver(done: Future[T], late: Callable[[T], object]) -> None:
    if done.exception() is None:
        late(done.result())


class _Unanswered(StoreUnavailable):
    """The store was not asked, or did not answer in time (its quiet is made already)."""


_SHARED: weakref.WeakKeyDictionary[object, dict[float, OneRead]] = weakref.WeakKeyDictionary()
_SHARED_MADE = threading.Lock()


def reads_of(store: object, wait: float = LIST_READ_WAIT) -> OneRead:
    """The ``OneRead`` of the reads of ``store`` that an answer is made of, waited for ``wait``:
    the task list's (``controller.service``), one task's, the status page's (``web.views``)
    within ``LIST_READ_WAIT``; a page of history a caller asks for within ``PAGE_READ_WAIT``.
    One for them all a wait: a store that hangs holds at most ``READS_AT_ONCE`` of this
    process's threads a wait, and reads that did not answer keep every other from waiting on
    them. Made at the first call; gone with the store."""
    with _SHARED_MADE:
        reads = _SHARED.setdefault(store, {})
        if wait not in reads:
            reads[wait] = OneRead(wait, LIST_READ_QUIET, READS_AT_ONCE)
        return reads[wait]
