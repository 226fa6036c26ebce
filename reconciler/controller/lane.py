"""The recorder's writes to the run store: one at a time, in order, each batch taking every
record handed in while the one before was on its way (a group commit), and answered in time.

A run waits for its claim's answer, and for its end record's: while it waits for its claim it
is a run of its task that may yet start (``Forbid`` skips the task's next slots); once its
process has ended it holds its task 0.5 s at most, whatever its record's write does
(``RunStops._save_end``). A
store that does not answer at all (PostgreSQL behind a network that went silent: no refusal,
no reset) held each write until libpq's socket settings gave up, 25 to 30 s, and with it
every run's claim and the end of every run that had finished, and each of those slots was
skipped for a run that had ended. So a write not answered within ``ANSWER_WAIT`` counts as an
outage for those waiting, as a lock held that long does (the store's ``WRITE_LOCK_WAIT``):
they hear what the store's ``StoreUnavailable`` would have told them (a claim runs anyway; a
record waits in the recorder's buffer), and so do the records handed in until that write
comes back. Not a claim the caller asked not to keep (under ``--ha``: such a slot does not run
unchecked) that was sent already: it may still be taken, and a slot taken but not run would be
``running`` for good, so it waits for the store's answer as before. The write itself is not
abandoned: nothing else is written before it ends (``settled``), so the store never sees an
older state of a record after a newer one; what it had committed is found again by the
buffer's writes (a claim that went through is taken as this process's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.aio import retrieved
from reconciler.core.runs import RunRecord
from reconciler.store.base import StoreUnavailable

Batch = list[tuple[RunRecord, asyncio.Future[bool]]]

Finish = Callable[[Batch, "asyncio.Future[Any]"], Coroutine[Any, Any, None]]

# The most records one transaction takes. Claims go in smaller batches: the runs of a batch
# start as soon as it is accepted, while the next batch is on its way to the store.
CLAIM_BATCH = 128
SAVE_BATCH = 512
# Seconds a claim or a record waits for the store's answer before it counts as unavailable.
ANSWER_WAIT = 2.0


class Lane:
    """One write at a time, and every record handed in meanwhile goes with the next (a group
    commit). Claims go before saves: a run waits for its claim, nothing waits for a save.

    The first record after a quiet moment goes at once, alone, not at the end of the loop's
    turn: the first run of a burst need not wait until the scheduler has handed over the
    whole burst. And the store's threads never compete for its write lock (SQLite's busy
    handler would make the loser sleep for milliseconds)."""

    def __init__(
        self,
        write: Callable[[str, list[RunRecord]], asyncio.Future[Any]],
        answer_wait: float = ANSWER_WAIT,
        patient: Callable[[asyncio.Future[bool]], bool] = lambda done: False,
    ) -> None:
        self._write = write
        self._answer_wait = answer_wait
        self._patient = patient  # a sent claim that waits for the store's answer however late
        self._queued: dict[str, Batch] = {"claim": [], "save": []}
        self._busy = False
        self._settled = asyncio.Event()  # no write is out that its callers stopped waiting for
        self._settled.set()
        self._finish: dict[str, Finish] = {}
        self._sending: set[asyncio.Task[None]] = set()  # a reference keeps each task alive

    def on_written(self, kind: str, finish: Finish) -> None:
        """``finish(batch, written)`` takes a batch's answer (``written``) on the loop."""
        self._finish[kind] = finish

    def put(self, kind: str, record: RunRecord) -> asyncio.Future[bool]:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not self._settled.is_set():
            self._unanswered(kind, [(record, done)])  # the store is late: do not queue behind
        else:
            self._queued[kind].append((record, done))
            self._next()
        return done

    async def settled(self) -> None:
        """Return once no write is out that its callers stopped waiting for: a write after it
        could reach the store first."""
        await self._settled.wait()

    def _next(self) -> None:
        if self._busy:
            return
        kind = "claim" if self._queued["claim"] else "save"
        queue, size = self._queued[kind], CLAIM_BATCH if kind == "claim" else SAVE_BATCH
        if not queue:
            return
        batch = queue[:size]
        del queue[:size]
        self._busy = True
        # In the store's thread from now on; the answer is taken on the loop.
        try:
            written = self._write(kind, [record for record, _ in batch])
        except Exception as err:  # not handed over: every write after it would wait for ever
            written = _unavailable(f"cannot hand the write over: {err}")
        self._spawn(self._deliver(kind, batch, written), done=self._sent)

    async def _deliver(self, kind: str, batch: Batch, written: asyncio.Future[Any]) -> None:
        answered, _ = await asyncio.wait({written}, timeout=self._answer_wait)
        if answered:
            await self._finish[kind](batch, written)
            return
        self._settled.clear()
        # A claim not to be kept when unanswered (``patient``) was sent: it may yet be taken,
        # and a slot taken but never run, nor ended, would hold a ``running`` row for good.
        # It waits for the store's own answer, whatever it is.
        patient = [i for i, (_, done) in enumerate(batch) if self._patient(done)]
        self._unanswered(kind, [item for i, item in enumerate(batch) if i not in patient])
        for queued in self._queued:
            waiting, self._queued[queued] = self._queued[queued], []
            if waiting:
                self._unanswered(queued, waiting)
        try:
            # The others' outcome is the buffer's business now: what it wrote is found again
            # there.
            with contextlib.suppress(Exception):
                await written
            if patient:
                await self._finish[kind]([batch[i] for i in patient], _part(written, patient))
        finally:
            self._settled.set()

    def _unanswered(self, kind: str, batch: Batch) -> None:
        """Answer ``batch`` as the store's ``StoreUnavailable`` would."""
        message = f"the run store did not answer within {self._answer_wait:g}s"
        self._spawn(self._finish[kind](batch, _unavailable(message)))

    def _spawn(
        self,
        work: Coroutine[Any, Any, None],
        done: Callable[[asyncio.Task[None]], None] | None = None,
    ) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._sending.add(task)
        # ``done`` lets go of the task itself: one done callback, not two (each is a turn of
        # the loop's own, on every write's path).
        task.add_done_callback(self._sending.discard if done is None else done)

    @staticmethod
    def answer(done: asyncio.Future[bool], result: bool) -> None:
        """Answer a caller's ``done`` (made by ``put``) with ``result``, unless its waiter
        cancelled it (a run cancelled while it waited for its claim): setting it would raise,
        and the rest of its batch would never be answered."""
        if not done.done():
            done.set_result(result)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._busy = False
        self._next()


def refuse(done: asyncio.Future[bool], error: BaseException) -> None:
    """Answer a caller's ``done`` with ``error``, which asyncio does not report as never
    retrieved if the caller no longer awaits it (its run was cancelled); nothing if its
    waiter cancelled it (``Lane.answer``). Read only once set: a done callback on every claim
    cost each run one more callback of the loop."""
    if done.done():
        return
    done.set_exception(error)
    done.add_done_callback(retrieved)


def _part(written: asyncio.Future[Any], indexes: list[int]) -> asyncio.Future[Any]:
    """The answer ``written`` gave, for the records at ``indexes`` of its batch."""
    part: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if (error := written.exception()) is not None:
        part.set_exception(error)
    else:
        results = written.result()
        part.set_result([results[i] for i in indexes])
    return part


def _unavailable(message: str) -> asyncio.Future[Any]:
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed.set_exception(StoreUnavailable(message))
    return failed


def started_pool(threads: int, prefix: str) -> ThreadPoolExecutor:
    """A pool whose ``threads`` threads run already. A ThreadPoolExecutor starts a thread when
    work comes and none is idle: under a pids limit (a pod's, ``ulimit -u``) that start can
    fail in the middle of a burst, long after crontask started, and a write that cannot be
    handed over stops every write behind it. Started now, they never need starting again."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix=prefix)
    # Each waits until all have started, so no task finds an idle thread to reuse.
    barrier = threading.Barrier(threads + 1)
    try:
        for _ in range(threads):
            pool.submit(barrier.wait)
        barrier.wait()
    except BaseException:
        barrier.abort()  # the threads that did start stop waiting
        pool.shutdown(wait=False)
        raise
    return pool
