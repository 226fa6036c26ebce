"""Concurrency policies across replicas (``--ha``): one run store, several dispatchers.

A run of a task may be going on another replica: a manual run asked there, a run from before a
handover still finishing on the replica that gave the task away. Two runs of a task have
different ids, so the store's primary key, which keeps a *slot* from running twice, does not
keep them apart; and a look at the store followed by a claim leaves a gap in which another
replica can do the same. So under ``Forbid`` and ``Replace`` the first attempt of every run is
claimed with :meth:`RunStore.claim_exclusive`, which looks for another replica's running run of
the task and claims in one step (:meth:`Handover.claim`): under ``Forbid`` the slot is skipped
while one is going; under ``Replace`` the other replica is asked (through the store) to stop it
and the claim is tried again once it has ended, unless a newer run of the task began there
meanwhile, which goes on (``ReplacedElsewhere``). ``Allow`` checks nothing; a retry holds its
slot already. Claims made together travel together (one ``claim_exclusive`` per batch, as the
recorder's ``claim_many``), so a burst of slots costs a few round trips, not one each.

A task *inherited* from another replica (it came here, or another replica runs it now) is
decided at its slot rather than ahead of it (``Dispatcher.due``): the run there may end
meanwhile. It is an ordinary task again once a claim of it goes through.

A claim whose answer was lost (the connection cut after the commit went out) may have been
taken all the same: its slot is not started here, and its row, if it is there, is this
replica's own, ``running``. Such claims are remembered (``unanswered``); the slot's next claim
here (its catch-up), refused as taken already, takes that row as its own (``held``), once:
else the row stayed ``running`` for good and the slot never ran.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, Final

from reconciler.aio import retrieved
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store.base import (
    DuplicateRun,
    ExclusiveClaim,
    RunStore,
    StoreClosed,
    StoreUnavailable,
)

log = logging.getLogger("crontask.runner")

Call = Callable[..., Coroutine[Any, Any, Any]]

# The most records one claim_exclusive takes (the lane's CLAIM_BATCH).
CLAIM_BATCH: Final = 128
# The most claims whose answer was lost remembered at once (``unanswered``), oldest forgotten.
UNANSWERED_MAX: Final = 1024

_Waiting = list[tuple[RunRecord, "asyncio.Future[ExclusiveClaim]"]]


class ReplacedElsewhere(DuplicateRun):
    """Not claimed (``Replace``): while it waited for a run on another replica to stop, a
    newer run of its task began there (a manual run asked meanwhile). As on one replica, where
    a run decided later replaces a run that waits to start, the newer one goes on; this one is
    recorded skipped (``why``), rather than stopping it."""

    def __init__(self, record: RunRecord, newer: list[RunRecord]) -> None:
        super().__init__(record.id, record.attempt)
        runs = ", ".join(f"{r.id} on {r.owner}" for r in newer)
        self.why = (
            f"a newer run of the task ({runs}) replaced the run while this run waited for "
            "another replica's run to stop; it did not start"
        )


class Handover:
    def __init__(
        self,
        store: RunStore,
        me: str,
        call: Call,
        *,
        poll: float = 0.25,
        patience: float = 60.0,
    ) -> None:
        self.store = store
        self.me = me
        self._call = call  # runs a blocking store call in the store's threads
        self.poll = poll
        self.patience = patience  # how long a replaced run may take to stop
        self._inherited: set[str] = set()
        self._waiting: _Waiting = []  # claims handed in while one batch is on its way
        self._sending: asyncio.Task[None] | None = None  # the batch on its way
        # (id, attempt) of the claims whose answer was lost, their slots not started here.
        self._unanswered: OrderedDict[tuple[str, int], None] = OrderedDict()

    def inherit(self, key: str) -> None:
        self._inherited.add(key)

    def forget(self, key: str) -> None:
        self._inherited.discard(key)

    def inherited(self, key: str) -> bool:
        return key in self._inherited

    # -- claims whose answer was lost ------------------------------------------------------

    def unanswered(self, record: RunRecord) -> None:
        """``record``'s claim got no answer (StoreUnavailable), and its slot is not started
        here (yet): the claim may have been taken all the same (see the module docs)."""
        key = (record.id, record.attempt)
        self._unanswered[key] = None
        self._unanswered.move_to_end(key)
        if len(self._unanswered) > UNANSWERED_MAX:
            self._unanswered.popitem(last=False)

    def answered(self, record: RunRecord) -> None:
        """``record``'s slot was claimed (or runs anyway): nothing of it is to be taken back."""
        self._unanswered.pop((record.id, record.attempt), None)

    def awaits_answer(self, record: RunRecord) -> bool:
        return (record.id, record.attempt) in self._unanswered

    async def held(self, record: RunRecord) -> bool:
        """``record``'s slot, refused as claimed already: whether the claim is this replica's
        own, whose answer was lost (``unanswered``). True: its row is this replica's and still
        ``running`` (nobody ended it; this replica never started it), so the slot is claimed
        and may start now. Once: a claim after it is refused, as any. Raises
        StoreUnavailable if the row could not be read (the claim is still unanswered)."""
        key = (record.id, record.attempt)
        if key not in self._unanswered:
            return False
        del self._unanswered[key]  # before the read: of two claims of it, one takes it
        try:
            row = await self._call(self.store.get, record.id, record.attempt)
        except StoreUnavailable:
            self.unanswered(record)
            raise
        if row is None or row.owner != self.me or row.status is not RunStatus.RUNNING:
            return False
        log.info(
            "the answer to a claim was lost; the slot's record is this replica's own: claimed",
            extra={"fields": {"task": record.task, "run": record.id, "attempt": record.attempt}},
        )
        return True

    async def claim(
        self,
        record: RunRecord,
        policy: ConcurrencyPolicy,
        reason: str,
        stopping: Callable[[], bool] = lambda: False,
        waiting: Callable[[bool], None] = lambda _: None,
    ) -> str | None:
        """Claim ``record`` (the first attempt of a run) unless a run of its task is going on
        another replica, as one step in the store. None: claimed, the run may start.
        Otherwise why the slot is skipped (``Forbid``). Under ``Replace`` the other replica is
        asked to stop its run (``reason``) and the claim is tried again once it has ended;
        after ``patience`` the run is claimed as any other slot, unless crontask is
        ``stopping`` meanwhile. ``waiting`` hears when the claim begins to wait for that run
        to end (True), and when it no longer does (False). Raises DuplicateRun if the slot is
        claimed already (another replica runs it) or is not to be started, ReplacedElsewhere if
        a newer run began there while it waited, StoreUnavailable if the store could not be
        asked."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.patience
        asked: set[str] = set()  # the runs it waited for
        while True:
            answer = await self._exclusive(record)
            if answer.claimed or (not answer.running and await self.held(record)):
                self._inherited.discard(record.task)
                self.answered(record)
                return None
            if not answer.running:
                raise DuplicateRun(record.id, record.attempt)
            ids = ", ".join(f"{r.id} on {r.owner}" for r in answer.running)
            if policy is not ConcurrencyPolicy.REPLACE:
                return f"previous run still running ({ids}); policy Forbid"
            if newer := _newer(record, answer.running, asked):
                raise ReplacedElsewhere(record, newer)
            asked.update(r.id for r in answer.running)
            if stopping():
                # Not claimed, not recorded: the task's next owner catches the slot up. Waiting
                # on would hold the shutdown up to ``patience``, past any grace.
                log.info(
                    "slot not started: crontask is stopping",
                    extra={"fields": {"task": record.task, "run": record.id}},
                )
                raise DuplicateRun(record.id, record.attempt)
            if loop.time() >= deadline:
                log.warning(
                    "a replaced run on another replica did not stop in time; starting anyway",
                    extra={"fields": {"task": record.task, "runs": ids}},
                )
                (claimed,) = await self._call(self.store.claim_many, [record])
                if not claimed and not await self.held(record):
                    raise DuplicateRun(record.id, record.attempt)
                self.answered(record)
                return None
            waiting(True)
            try:
                await self._call(self.store.request_stop, [r.id for r in answer.running], reason)
                log.info(
                    "asked another replica to stop a run",
                    extra={"fields": {"task": record.task, "runs": ids, "reason": reason}},
                )
                await self._ended(record.task, {r.id for r in answer.running}, deadline, stopping)
            finally:
                waiting(False)

    # -- claims made together travel together ----------------------------------------------

    def _exclusive(self, record: RunRecord) -> asyncio.Future[ExclusiveClaim]:
        """``record``'s answer from ``claim_exclusive``: the first claim after a quiet moment
        goes at once, alone; those handed in while it is on its way go together next."""
        answer: asyncio.Future[ExclusiveClaim] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(retrieved)  # its claim may have been cancelled meanwhile
        self._waiting.append((record, answer))
        if self._sending is None:
            self._send()
        return answer

    def _send(self) -> None:
        batch, self._waiting = self._waiting[:CLAIM_BATCH], self._waiting[CLAIM_BATCH:]
        self._sending = asyncio.get_running_loop().create_task(self._write(batch))
        self._sending.add_done_callback(self._sent)

    def _sent(self, _: asyncio.Task[None]) -> None:
        self._sending = None
        if self._waiting:
            self._send()

    async def _write(self, batch: _Waiting) -> None:
        try:
            answers = await self._call(self.store.claim_exclusive, [r for r, _ in batch])
        except StoreUnavailable as err:
            for _, answer in batch:
                _fail(answer, StoreUnavailable(str(err)))
        except StoreClosed as err:  # crontask is stopping: not a record the store refused
            for _, answer in batch:
                _fail(answer, err)
        except Exception as err:
            if len(batch) == 1:
                _fail(batch[0][1], err)
                return
            # A record the store refuses must not cost the rest of its batch.
            log.exception("could not claim runs together; claiming them one by one")
            for one in batch:
                await self._write([one])
        else:
            for (_, answer), got in zip(batch, answers, strict=True):
                if not answer.done():
                    answer.set_result(got)

    async def _foreign(self, key: str) -> list[RunRecord]:
        running: list[RunRecord] = await self._call(self.store.running, key)
        return [r for r in running if r.owner != self.me]

    async def _ended(
        self, key: str, ids: set[str], deadline: float, stopping: Callable[[], bool]
    ) -> None:
        """Until none of the runs ``ids`` of ``key`` is running any more, ``deadline``, or
        ``stopping``."""
        loop = asyncio.get_running_loop()
        while loop.time() < deadline and not stopping():
            if not {r.id for r in await self._foreign(key)} & ids:
                return
            await asyncio.sleep(self.poll)


def _newer(record: RunRecord, running: tuple[RunRecord, ...], asked: set[str]) -> list[RunRecord]:
    """The runs of ``running`` that began while ``record``'s claim waited for the ones it
    ``asked`` to stop, asked or scheduled after it: decided after it, they replace it. None
    at its first look (nothing waited for yet): it replaces whatever runs then."""
    if not asked:
        return []
    return [r for r in running if r.id not in asked and r.scheduled_at > record.scheduled_at]


def _fail(answer: asyncio.Future[ExclusiveClaim], err: BaseException) -> None:
    if not answer.done():
        answer.set_exception(err)
