"""The threads that start processes, past starts that do not return (see ``runner.process``,
"A start that does not return"): a pool that replaces a stuck thread, up to a bound, and whose
threads are daemons, which a ``ThreadPoolExecutor`` is not."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from reconciler.runner import group, libc_spawn

log = logging.getLogger("crontask.runner")

P = ParamSpec("P")
T = TypeVar("T")

# A start under way this long is taken to be stuck (one takes a millisecond, a few hundred on a
# slow disk): being wrong costs a thread more for a while. At most STUCK_MAX stuck starts get
# a thread in their place, so a flood of them costs a bounded number of threads (and of clones
# blocked before their exec).
STUCK_AFTER = 1.0
STUCK_MAX = 32
_numbers = itertools.count(1)
_local = threading.local()  # the _Worker of a pool's thread


class _Worker:
    """A thread of a pool, what it is on, and since when that has been a start (of ``what``).
    Its name in the kernel (``comm``) is its own: the clone of a start has it until its exec."""

    __slots__ = ("comm", "future", "since", "stuck", "thread", "what")

    def __init__(self, pool: str, work: Callable[[_Worker], None]) -> None:
        self.comm = f"ct-spawn-{next(_numbers)}"
        self.thread = threading.Thread(target=work, args=(self,), name=f"{pool} {self.comm}")
        self.thread.daemon = True
        self.future: concurrent.futures.Future[Any] | None = None
        self.since: float | None = None
        self.what = ""
        self.stuck = False


class Pool(concurrent.futures.Executor):
    """``size`` daemon threads that run what is submitted, in order, past stuck starts (see the
    module docstring): a ``ThreadPoolExecutor`` joins its threads at the interpreter's exit,
    and never has more than its number."""

    def __init__(self, size: int, name: str, stuck_after: float = STUCK_AFTER) -> None:
        self.size, self.stuck_after, self._name = size, stuck_after, name
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Any] | None]
        self._queue = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # a token per thread back for more work
        self._lock = threading.Lock()
        self._watch = threading.Condition(self._lock)  # wakes the watcher: work waits
        self._watcher_idle: bool | None = None  # None: no watcher yet
        self._workers: set[_Worker] = set()
        self._stuck = 0
        self._shut = False

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """As ``Executor.submit``, but raises ``RuntimeError``, queueing nothing, if no thread
        can be started for it (a pids limit) or every thread is stuck and no more may be."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if not self._idle.acquire(blocking=False):
                if len(self._workers) < self._limit():
                    self._add_worker()
                elif self._stuck >= len(self._workers):
                    raise RuntimeError(self._all_stuck())
                else:
                    self._wake_watcher()
            self._queue.put((future, functools.partial(fn, *args, **kwargs)))
        return future

    @staticmethod
    def under_way(what: str) -> None:
        """In a pool's thread: its work is a start of ``what`` from now on."""
        worker: _Worker | None = getattr(_local, "worker", None)
        if worker is not None:
            worker.what, worker.since = what, time.monotonic()

    def give_up(self, future: concurrent.futures.Future[Any]) -> None:
        """Nobody waits for ``future`` any more. If it is a start under way, its thread is
        stuck from now on, and its clone, if still before its exec, is killed: it never runs
        the program, and the start returns (then see ``_kill_orphan``)."""
        with self._lock:
            worker = next((w for w in self._workers if w.future is future), None)
            if worker is None or worker.since is None:
                return  # done, queued, or waiting for its instant: it starts nothing
            if not worker.stuck:
                self._mark_stuck(worker, "given up")
                if self._queue.qsize():
                    self._wake_watcher()
        # A look through /proc: not on the loop, which may give up on many at once.
        kill = threading.Thread(target=self._kill_clone, args=(worker, future))
        kill.daemon = True
        try:
            kill.start()
        except RuntimeError:  # a pids limit
            self._kill_clone(worker, future)

    def _kill_clone(self, worker: _Worker, future: concurrent.futures.Future[Any]) -> None:
        # Under the lock, which the thread takes before its next start: a clone with its name
        # is this start's, not the next one's.
        with self._lock:
            if worker.future is future:
                group.kill_children_named(worker.comm)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """For tests (crontask never calls it): ``wait`` joins stuck threads too."""
        with self._lock:
            self._shut = True
            self._queue.put(None)
            self._watch.notify()
            threads = [w.thread for w in self._workers]
        for thread in threads if wait else ():
            thread.join()

    def _limit(self) -> int:
        return self.size + min(self._stuck, STUCK_MAX)

    def _add_worker(self) -> None:
        """(Lock held.) Raises ``RuntimeError`` if no thread can be started."""
        worker = _Worker(self._name, self._work)
        worker.thread.start()
        self._workers.add(worker)

    def _work(self, worker: _Worker) -> None:
        _local.worker = worker
        libc_spawn.name_thread(worker.comm)
        while (item := self._queue.get()) is not None:
            future, call = item
            if future.set_running_or_notify_cancel():
                worker.future = future
                try:
                    future.set_result(call())
                except BaseException as exc:
                    future.set_exception(exc)
            # A failed start's traceback holds this frame: it must not hold the future too.
            del item, future, call
            with self._lock:
                worker.future = worker.since = None
                if worker.stuck:
                    worker.stuck, self._stuck = False, self._stuck - 1
                    if len(self._workers) > self._limit():  # its place was taken
                        self._workers.discard(worker)
                        return
            self._idle.release()
        self._queue.put(None)  # shut down: the next thread hears it too

    def _mark_stuck(self, worker: _Worker, why: str) -> None:
        """(Lock held; once per stuck start.)"""
        worker.stuck, self._stuck = True, self._stuck + 1
        fields: dict[str, object] = {"command": worker.what, "why": why, "thread": worker.comm}
        fields |= {"stuck": self._stuck, "replaced": self._stuck <= STUCK_MAX}
        log.warning(
            "a process start does not return (a file system that does not answer?)",
            extra={"fields": fields},
        )

    def _all_stuck(self) -> str:
        return (
            "every thread that starts processes is stuck in a start that does not return"
            f" ({self._stuck} of them: a file system that does not answer?)"
        )

    def _wake_watcher(self) -> None:
        """(Lock held.) Work waits for a thread: the watcher looks for stuck ones."""
        if self._watcher_idle is None:
            watcher = threading.Thread(target=self._watch_stuck, name=f"{self._name} watch")
            watcher.daemon = True
            watcher.start()
        elif self._watcher_idle:
            self._watch.notify()
        self._watcher_idle = False

    def _watch_stuck(self) -> None:
        """While work waits: mark the starts under way for ``stuck_after`` stuck, start threads
        in their place, and once every thread is stuck and no more may be, fail what waits
        (as ``submit`` then refuses more)."""
        with self._lock:
            while not self._shut:
                now = time.monotonic()
                starts = []
                for worker in self._workers:
                    if worker.stuck or worker.since is None:
                        continue
                    if now - worker.since >= self.stuck_after:
                        self._mark_stuck(worker, f"under way for {self.stuck_after:g}s")
                    else:
                        starts.append(worker.since)
                waiting = self._queue.qsize()
                with contextlib.suppress(RuntimeError):  # a pids limit: at the next look
                    for _ in range(min(waiting, self._limit() - len(self._workers))):
                        self._add_worker()
                if not waiting:
                    self._watcher_idle = True
                    self._watch.wait()
                elif self._stuck >= len(self._workers) >= self._limit():
                    self._fail_waiting(RuntimeError(self._all_stuck()))
                else:
                    # Work that is not a start yet (one waiting for its instant) may become
                    # one meanwhile: look again then.
                    due = min(starts, default=now) + self.stuck_after - now
                    self._watch.wait(max(due, 0.001))

    def _fail_waiting(self, error: RuntimeError) -> None:
        """(Lock held.)"""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is None:
                self._queue.put(None)
                return
            if item[0].set_running_or_notify_cancel():
                item[0].set_exception(error)
