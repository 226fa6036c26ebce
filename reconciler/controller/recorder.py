"""Writing run records: off the event loop, in order, and never lost to a brief outage.

Claims go straight to the store, because a claim decides whether this process may run a slot
(the store refuses a second claim of the same slot). Writes go one at a time, and the records
handed in while one is on its way travel together in the next (a group commit, see ``lane``):
the first claim of a burst goes at once, alone, so the first run starts without waiting for the
rest; the others of the burst follow in a few ``claim_many`` calls of up to ``CLAIM_BATCH``
records, each batch's runs starting while the next is written, so starting thousands of runs
costs a few store round trips, not one each. Final records travel together the same way in
``save_many`` calls, after any claim that waits.

When the store is unavailable, or does not answer a write within ``ANSWER_WAIT`` (``lane``), the
run still happens — without replicas nobody else can run its slot — and its records wait in a
bounded buffer that is retried with backoff until the store is back; a claim or skip the store
takes meanwhile ends the backoff (``_answered``, once a second at most): the store answers, the
records go at once (should the store still refuse them, the next claim ends a backoff a
second later at the earliest, ``_backoff``). A claim may also be asked not to be kept
(``claim_soon(keep=False)``): with replicas, a slot whose claim could not be checked is not
run, since the replica that takes the task over would run it too; nothing of it waits then.
The buffer coalesces by (run id, attempt): the newest state of a record replaces an older
pending one, so a run's ``running`` and final records cost one slot. A claim kept that way is
still a claim when it is written: if another instance recorded the slot meanwhile, its record
stands, and this process's records of that slot are not written over it (logged as a warning
instead).

A record the store refuses for another reason (an error that is no outage: a value it will not
take, a schema someone changed) is kept too, and tried again with the others, but only
``REFUSED_TRIES`` times alone: an error that lasts is the record's, not the store's, and a
record failing for ever must neither hold the records behind it nor wait for ever. It is then
dropped (logged as an error, counted in ``dropped``).

The loss window, stated: at most ``capacity`` records wait in memory, their outputs within a
budget past which a record keeps only the end of its output (``waiting``). When it is full, the
first in line is dropped (counted in ``dropped``): the oldest, but for records the store would
not take alone, which went to the back (see ``_flush_loop``). Both are said once an outage,
with counts, the first records dropped named one by one (``outage_log``). A process
that dies with records pending loses them; one that stops with records pending after the
shutdown's wait logs each lost record's run, attempt and status (the first ``LOST_LISTED``, and
how many more), and ``crontask run`` exits 1 (``lost``). Records a write still under way takes
(a slow store, not a down one) are said not confirmed instead, and that write's end when it
comes (``controller.lost``). A run whose ``running`` record never reached the store is not in
it: the next start on this host stops the command it may have left running and records it
``interrupted`` (``controller.instance``), or the slot counts as missed. Records the store could
not take at that start (``later``) wait here like any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from reconciler.aio import first_of, within
from reconciler.controller.claiming import Claiming
from reconciler.controller.lane import ANSWER_WAIT, SAVE_BATCH, Batch, Lane, started_pool
from reconciler.controller.lost import LOST_LISTED as LOST_LISTED
from reconciler.controller.lost import AtStop, Writes
from reconciler.controller.outage_log import OutageLog
from reconciler.controller.waiting import (
    CLAIM,
    CREATE,
    DEFAULT_CAPACITY,
    DEFAULT_OUTPUT_BUDGET,
    SAVE,
    Entry,
    Key,
    Mode,
    Waiting,
    behind,
    write_kept,
)
from reconciler.core.runs import RunRecord
from reconciler.store.base import DuplicateRun, RunStore, StoreClosed, StoreUnavailable

log = logging.getLogger("crontask.recorder")

T = TypeVar("T")


# Records a flush tries alone, one after another, before it sleeps: more failing alone is an
# outage, not a locked row.
LONE_TRIES = 3
# Times a kept record may fail alone for a reason other than an outage before it is dropped:
# enough to outlast a passing error nobody foresaw, few enough that a record the store will
# never take costs the records behind it seconds (the flush loop's backoff), not for ever.
REFUSED_TRIES = 3
# A write that went through ends the flush loop's backoff (the store answers: the records go at
# once), once in this long at most: a store that takes claims and not the records waiting (a
# record too big for the room left, a row kept locked) would otherwise have a try of up to
# LONE_TRIES records follow each claim, back to back.
CUT_EVERY = 1.0


class Recorder(Claiming):
    def __init__(
        self,
        store: RunStore,
        *,
        capacity: int = DEFAULT_CAPACITY,
        output_budget: int = DEFAULT_OUTPUT_BUDGET,
        io_threads: int = 2,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        answer_wait: float = ANSWER_WAIT,
    ) -> None:
        self.store = store
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.dropped = 0
        self._at_stop = AtStop()  # what ``close`` left (``lost``)
        self._writes = Writes()  # the writes in the store's threads, with their records
        self._pool = started_pool(io_threads, "crontask-store")
        self._pending = Waiting(capacity, output_budget)
        # Failures alone, other than an outage, of records waiting (see REFUSED_TRIES): only
        # keys in the buffer, so bounded as it is.
        self._refusals: dict[Key, int] = {}
        # Slots whose late claim found another instance's record: later states are not saved.
        self._refused: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._flusher: asyncio.Task[None] | None = None
        self._retry = asyncio.Event()  # ends the flush loop's backoff (``retry_now``)
        self._eager = False  # the backoff is a second at most (``retry_now``)
        # Writes that went through, and an event set by each (``_answered``).
        self._answers = 0
        self._answer = asyncio.Event()
        self._cut_at = -CUT_EVERY  # the loop's time such a write last ended a backoff
        self._outage = OutageLog()  # what an outage costs, said once each thing, counted
        # Kept skips whose caller hears of them once written (``add``, ``save``): keys in the
        # buffer, and a ``save``'s on its way.
        self._told: dict[Key, Callable[[RunRecord], None]] = {}
        # Saves whose caller hears of a mark that stands (``save``), and the marks just found.
        self._marked: dict[Key, Callable[[RunRecord], None]] = {}
        self._stood: dict[Key, RunRecord] = {}
        # Claims not to be kept when the store cannot answer them (``claim_soon(keep=False)``).
        self._unkept: set[asyncio.Future[bool]] = set()
        self._closed = False
        self._answer_wait = answer_wait
        self._lane = Lane(self._write, answer_wait, patient=self._unkept.__contains__)
        self._lane.on_written("claim", self._claimed)
        self._lane.on_written("save", self._saved)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def held(self) -> list[RunRecord]:  # the records waiting for the store, oldest first
        return [entry[0] for _, entry in self._pending.first(len(self._pending))]

    @property
    def closed(self) -> bool:  # ``close`` has shut the store's threads: ``call`` fails
        return self._closed

    @property
    def lost(self) -> int:
        """Records still pending when ``close`` gave up, not known written (logged): none
        reached the store, or a write still under way takes them and has not landed yet."""
        return self._at_stop.missing

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking store call in the store's threads (StoreClosed once ``close`` has)."""
        if self._closed:
            raise StoreClosed("the run store's threads are closed: crontask is stopping")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _send(
        self, records: Sequence[RunRecord], fn: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """``call``, for a write of ``records``: known to ``close`` until it ends."""
        write = self._pool.submit(fn, *args)
        self._writes.add(write, records)
        return asyncio.wrap_future(write, loop=asyncio.get_running_loop())

    def _write(self, kind: str, records: list[RunRecord]) -> asyncio.Future[Any]:
        if kind == "claim":
            fn: Callable[[list[RunRecord]], Any] = self.store.claim_many
        elif self._pending:  # an outage began after these were queued: wait behind it
            fn = behind
        else:
            fn = self.store.save_many
        return self._send(records, fn, records)

    async def add(
        self, record: RunRecord, written_later: Callable[[RunRecord], None] | None = None
    ) -> bool:
        """Create a record that must not replace an existing one (a skip: another instance
        may have run that slot). Never raises; False if it exists already or was kept. A record
        kept goes to ``written_later`` (which must not raise) once this process wrote it after
        all (the call that answered late, or the buffer); not if it is dropped or lost."""
        if self._closed:
            return self._after_close(record)
        # Bounded, as in ``lane``: a store that took bytes and never answered held the stop
        # (``drain``). The call goes on; a record kept meanwhile goes where its slot has none.
        wait = self._answer_wait
        unanswered = StoreUnavailable(f"the run store did not answer within {wait:g}s")
        try:
            await within(self._send([record], self.store.claim, record), wait, unanswered)
        except DuplicateRun:
            return False
        except StoreUnavailable:
            self._keep(record, CREATE)
        except Exception:
            self._keep_refused(record, CREATE)
        else:
            self._answered()
            return True
        if written_later is not None and (key := (record.id, record.attempt)) in self._pending:
            self._told[key] = written_later
        return False

    async def save(
        self,
        record: RunRecord,
        written_later: Callable[[RunRecord], None] | None = None,
        marked: Callable[[RunRecord], None] | None = None,
    ) -> bool:
        """Write the newest state of a record, creating it if needed. Never raises; False if
        it was kept for later (the store is unavailable, or earlier records are waiting), and
        then told to ``written_later`` once written, as ``add``'s (a manual run's skip).
        ``marked`` (must not raise) hears the record another replica marked interrupted if it
        stands instead (``store.keep_marks``): before True is returned, or once written later.
        Records saved while another write is on its way travel together (``save_many``)."""
        key = (record.id, record.attempt)
        if self._closed:
            return self._after_close(record)
        if key in self._refused:
            self._refuse(record)
            return False
        if written_later is not None:  # before it is kept: the buffer's write reads ``_told``
            self._told[key] = written_later
        if marked is not None:
            self._marked[key] = marked
        try:
            if self._pending:
                self._keep(record, SAVE)  # keep order behind what is waiting
                saved = False
            else:
                saved = await self._lane.put("save", record)
        finally:
            stood = self._stood.pop(key, None)
        if written_later is not None and (saved or key not in self._pending):
            self._told.pop(key, None)  # written now (the caller tells), or told already
        if marked is not None and (saved or key not in self._pending):
            self._marked.pop(key, None)
            if stood is not None:
                marked(stood)
        return saved

    async def _saved(self, batch: Batch, written: asyncio.Future[Any]) -> None:
        try:
            await written
        except StoreUnavailable as err:
            self._keep_for_later(batch, "run store unavailable; records kept for later", err, SAVE)
            return
        except Exception:
            # Something in the batch the store refuses must not cost the others.
            log.exception("could not record runs together; writing them one by one")
            for record, saved in batch:
                saved.set_result(await self._save_one(record))
            return
        self._stand(written.result())
        for _, saved in batch:
            saved.set_result(True)

    def _stand(self, marks: Sequence[RunRecord] | None) -> None:  # for each ``save`` that waits
        self._stood.update(((r.id, r.attempt), r) for r in marks or ())  # a test's store: None

    def _keep_for_later(
        self, batch: Batch, message: str, err: StoreUnavailable, mode: Mode
    ) -> None:
        """The batch waits in the buffer; each of its callers hears False (not written)."""
        self._outage.kept(message, len(batch), str(err))
        for record, done in batch:
            self._keep(record, mode)
            self._lane.answer(done, False)  # a claim's waiter may have cancelled it

    async def _save_one(self, record: RunRecord) -> bool:
        if (record.id, record.attempt) in self._pending:  # an older state of it is waiting
            self._keep(record, SAVE)
            return False
        try:
            self._stand(await self.call(self.store.save_many, [record]))
        except StoreUnavailable:
            self._keep(record, SAVE)
            return False
        except Exception:
            self._keep_refused(record, SAVE)
            return False
        return True

    def _keep_refused(self, record: RunRecord, mode: Mode) -> None:
        """Keep a record the store refused for a reason other than an outage (called in the
        ``except`` that caught it): tried again with the others, dropped after
        ``REFUSED_TRIES`` failures (``_flush_loop``)."""
        log.warning(
            "could not record run; kept to try again",
            exc_info=True,
            extra={"fields": {"run": record.id, "attempt": record.attempt}},
        )
        self._keep(record, mode)
        key = (record.id, record.attempt)
        if key in self._pending:
            self._refusals[key] = self._refusals.get(key, 0) + 1

    def retry_now(self) -> None:
        """Try the store again now, and then every second at most, not after the backoff (up
        to 30 s): at the stop, a store back before or during the records' wait is asked in
        time, and the records are not lost to a store that answers."""
        self._eager = True
        self._retry.set()

    def _answered(self) -> None:
        """A write went through (a claim, a skip): the store answers, so the records waiting
        are tried now, not after the flush loop's backoff (up to 30 s after an outage, with
        finished runs shown ``running`` meanwhile, and lost to a kill). See ``_backoff``."""
        self._answers += 1
        self._answer.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending; False if ``timeout`` passed first."""
        if self._flusher is None or self._flusher.done():
            return not self._pending
        done, _ = await asyncio.wait({self._flusher}, timeout=timeout)
        return bool(done) and not self._pending

    async def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` for what is pending, then say what is lost, or not confirmed
        (``lost``). The store's threads are not joined: one waiting for a store that takes
        bytes and never answers (its driver has no bound of its own) would hold the event
        loop, and the stop with it, for ever; what they still do is abandoned, and the end of
        ``crontask run`` does not wait for them either (``cli.daemon``)."""
        gave_up = not await self.flush(timeout) and bool(self._pending)
        if self._flusher is not None:
            self._flusher.cancel()
        self._closed = True
        # Before the records are said: a write only queued for the threads is cancelled now,
        # and never reaches the store; one a thread took is under way (``lost.Writes``).
        self._pool.shutdown(wait=False, cancel_futures=True)
        if gave_up:
            self._at_stop.say(self._pending.first(len(self._pending)), self._writes)
            self._outage.back(stopping=True)

    def later(self, saves: Sequence[RunRecord], creates: Sequence[RunRecord] = ()) -> None:
        """Keep records the store could not take before this recorder was made (the ends of
        runs a dead crontask left, at start, ``controller.instance.Recovery``), to be written
        with the others once it is back: ``saves`` over what the store holds, ``creates``
        only where it holds nothing (a record that appeared meanwhile stands)."""
        for record in saves:
            self._keep(record, SAVE)
        for record in creates:
            self._keep(record, CREATE)

    def _after_close(self, record: RunRecord) -> bool:
        """A record that comes after ``close`` (a component that stops after the runs, such as
        a Job's watch): said, not raised; the store's threads are gone."""
        log.error(
            "run record not written: the run store is closed (crontask is stopping)",
            extra={
                "fields": {"run": record.id, "attempt": record.attempt, "status": record.status}
            },
        )
        return False

    def _keep(self, record: RunRecord, mode: Mode) -> None:
        # A claim not yet written stays a claim; a save after a skip is this process's own
        # state of the slot.
        waiting = self._pending.get((record.id, record.attempt))
        if waiting is not None and CLAIM in (waiting[1], mode):
            mode = CLAIM
        if waiting is not None and waiting[0] != record:
            # A newer state of the record: its tries begin anew (the older state's refusals
            # cost the final record its three tries).
            self._refusals.pop((record.id, record.attempt), None)
        cuts = self._pending.cuts
        if (lost := self._pending.put(record, mode)) is not None:
            self._refusals.pop(lost, None)
            self._told.pop(lost, None)
            self._marked.pop(lost, None)
            self.dropped += 1
            self._outage.dropped(lost, self._pending.capacity, self.dropped)
        if self._pending.cuts != cuts:
            self._outage.cut(record, self._pending.output_budget, len(self._pending))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        """Write what waits, a batch at a time, until nothing does.

        A batch the store does not take is halved, and tried again at once, until the record
        it cannot take stands alone: one row another process keeps locked (PostgreSQL's
        ``SELECT ... FOR UPDATE`` held open) must hold back only its own record. That record
        goes to the back of the line, and the next is tried; the loop sleeps (with backoff)
        once the record now first in line has failed alone too, or ``LONE_TRIES`` have since
        the last write (an outage: retried as gently as ever). A batch grows back, doubling,
        with each write that goes through. A record that failed alone ``REFUSED_TRIES`` times
        for a reason other than an outage is dropped."""
        delay, size = self.retry_initial, SAVE_BATCH
        alone: set[Key] = set()  # the records that failed alone since the last write or sleep
        while self._pending:
            await self._lane.settled()  # a write still out could land after this one
            batch = self._pending.first(size)
            self._pending.writing = frozenset(key for key, _ in batch)
            tried = self._answers
            try:
                entries = [e for _, e in batch]
                sent = [record for record, _ in entries]
                refused, created, stood = await self._send(
                    sent, write_kept, self.store, entries, self._told
                )
            except Exception as err:
                if len(batch) > 1:
                    size = len(batch) // 2
                    continue
                key, entry = batch[0]
                if not isinstance(err, StoreUnavailable) and self._refused_for_good(key):
                    log.exception(
                        "could not record run; dropped",
                        extra={
                            "fields": {"run": key[0], "attempt": key[1], "tries": REFUSED_TRIES}
                        },
                    )
                    self.dropped += 1
                    self._written(batch)
                    continue
                self._pending.to_back(key, entry)
                alone.add(key)
                head = self._pending.first(1)
                if len(alone) >= LONE_TRIES or (head and head[0][0] in alone):
                    await self._backoff(delay, tried)
                    delay = min(delay * 2, self.retry_max)
                    alone.clear()
                continue
            finally:
                self._pending.writing = frozenset()
            for record in refused:
                self._refuse(record)
            self._written(batch, created, stood)
            delay, size = self.retry_initial, min(size * 2, SAVE_BATCH)
            alone.clear()
        self._outage.back()

    async def _backoff(self, delay: float, tried: int) -> None:
        """Wait ``delay`` seconds before the store is tried again, or until ``retry_now``, or
        a write that went through (``_answered``) since the last try began (``tried``: the
        writes that had then): after an outage the records go at once. Such a write ends a
        backoff once every ``CUT_EVERY`` at most; the backoff itself grows as ever."""
        loop = asyncio.get_running_loop()
        timeout = min(delay, 1.0) if self._eager else delay
        ends = loop.time() + timeout
        if self._answers == tried:
            self._answer.clear()
            await first_of(self._retry, self._answer, timeout=timeout)
        if not self._retry.is_set() and self._answers != tried and loop.time() < ends:
            # Cut short by a write: not sooner than CUT_EVERY after the last cut (a backoff
            # that ran its time, or ended by retry_now, is no cut).
            hold = min(self._cut_at + CUT_EVERY, ends) - loop.time()
            if hold > 0:
                await first_of(self._retry, timeout=hold)
            if not self._retry.is_set():
                self._cut_at = loop.time()
        self._retry.clear()

    def _refused_for_good(self, key: Key) -> bool:
        """Count one more failure of ``key`` alone (not an outage); True past REFUSED_TRIES."""
        tries = self._refusals.get(key, 0) + 1
        self._refusals[key] = tries
        return tries >= REFUSED_TRIES

    def _written(
        self,
        batch: list[tuple[Key, Entry]],
        created: Collection[Key] = (),
        stood: Sequence[RunRecord] = (),
    ) -> None:
        marks = {(r.id, r.attempt): r for r in stood}
        for key, entry in batch:
            self._pending.remove(key, entry)
            if key in created and (tell := self._told.pop(key, None)) is not None:
                tell(entry[0])
            if key in marks and (tell := self._marked.pop(key, None)) is not None:
                tell(marks[key])
            if key not in self._pending:  # a newer state of it may have come meanwhile
                self._refusals.pop(key, None)
                self._told.pop(key, None)
                self._marked.pop(key, None)

    def _refuse(self, record: RunRecord) -> None:
        """Another instance recorded this slot while the store was unavailable here: its
        record stands; this one, and the later states of this attempt, are not written."""
        key = (record.id, record.attempt)
        if key not in self._refused and len(self._refused) >= self._pending.capacity:
            self._refused.popitem(last=False)
        self._refused[key] = None
        log.warning(
            "slot recorded by another instance while the run store was unavailable here; "
            "this run's record is not written over it",
            extra={
                "fields": {"run": record.id, "attempt": record.attempt, "status": record.status}
            },
        )
