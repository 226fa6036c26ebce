"""What a stop says of the run records the store has not taken (``Recorder.close``).

A record still waiting when the records' wait ends is one of two things. Lost: no write to the
store took it (the store was down, or a write before it never answered), and none will now; the
next start sees of it only what the store holds. Or not confirmed: a write taking it is still
under way in the store's threads (the store is slow, not down: a lock held, a disk that
stalls), which the stop cannot cut short and may yet land. Calling those lost blamed an
unavailable store for a slow one, and an operator repairing history from the lost lines would
have repaired records that were written. So they are said apart, and the end of each write
under way is said when it comes, written or failed (then lost, named as the others), within
the seconds the process gives its threads anyway (``controller.runtime``, ``cli.daemon``): no
wait of its own. The outcome unknown, its records count as ``missing``, and ``crontask run``
exits 1 as on a loss, unless the write has landed when the exit status is decided (after the
threads' wait of ``controller.runtime``); one that lands later, during the last wait at exit
(``cli.daemon``), is said, but the status decided stays.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from reconciler.controller.waiting import Entry, Key
from reconciler.core.runs import RunRecord

log = logging.getLogger("crontask.recorder")

# Records lost, or not confirmed, at shutdown listed one by one in the log; the rest are counted.
LOST_LISTED = 20
# The records of the last writes that went through, kept to tell a record still waiting at the
# stop whose write landed before the loop took its answer (a busy loop, or an answer given up
# on: ``lane.ANSWER_WAIT``) from one the store never took. More than a burst's writes in flight.
LANDED_KEPT = 4096

Waited = list[tuple[Key, Entry]]
State = tuple[object, ...]


def state_of(record: RunRecord) -> State:
    """What tells one state of a run attempt from another (its output aside, which a record
    kept waiting may have cut): immutable values only."""
    return (
        record.status,
        record.started_at,
        record.finished_at,
        record.exit_code,
        record.reason,
        record.owner,
    )


LANDED = "run records written after the shutdown's wait: the write under way went through"


class Writes:
    """The store writes handed to the recorder's threads and not ended, each with the records
    it takes. A write ends in its own thread, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._out: dict[Future[Any], Sequence[RunRecord]] = {}
        # Each run attempt's state, not its record: no record outlives its run here (a run is
        # freed by reference counting as soon as it ends, never left to the collector).
        self._landed: OrderedDict[Key, State] = OrderedDict()

    def add(self, write: Future[Any], records: Sequence[RunRecord]) -> None:
        with self._lock:
            self._out[write] = records
        write.add_done_callback(self._ended)  # at once if it ended already

    def _ended(self, write: Future[Any]) -> None:
        landed = not write.cancelled() and write.exception() is None
        with self._lock:
            records = self._out.pop(write, ())
            for record in records if landed else ():
                key = (record.id, record.attempt)
                self._landed[key] = state_of(record)
                self._landed.move_to_end(key)
            while len(self._landed) > LANDED_KEPT:
                self._landed.popitem(last=False)

    def under_way(self) -> list[tuple[Future[Any], Sequence[RunRecord]]]:
        """The writes not ended, and those ended whose end is not noted yet (it is, at once,
        when ``AtStop.say`` follows them). Asked once the threads' queue was cancelled
        (``shutdown`` with ``cancel_futures``): a write still pending then is taken by a
        thread, or is."""
        with self._lock:
            return [(write, rs) for write, rs in self._out.items() if not write.cancelled()]

    def landed(self, key: Key) -> State | None:
        """The state of run attempt ``key`` a write that went through took last, if recent."""
        with self._lock:
            return self._landed.get(key)


class AtStop:
    """The records a recorder's close left: lost, and those not confirmed yet (``missing``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lost = 0
        self._unconfirmed = 0

    @property
    def missing(self) -> int:
        """Records not known written: lost, or in a write under way that has not landed."""
        with self._lock:
            return self._lost + self._unconfirmed

    def say(self, waiting: Waited, writes: Writes) -> None:
        """Say what became of ``waiting`` (the records still kept), and, for those a write
        under way takes, what becomes of them when it ends."""
        unsure: dict[Future[Any], Waited] = {}
        lost: Waited = []
        sent = [
            (write, {(r.id, r.attempt): state_of(r) for r in rs})
            for write, rs in writes.under_way()
        ]
        landed = 0
        for key, entry in waiting:
            # Its own state, not an older one of its run: a newer state no write took is lost.
            state = state_of(entry[0])
            write = next((w for w, states in sent if states.get(key) == state), None)
            if write is not None:
                unsure.setdefault(write, []).append((key, entry))
            elif state == writes.landed(key):
                landed += 1  # its write went through before the loop took the answer
            else:
                lost.append((key, entry))
        if landed:
            log.info(LANDED, extra={"fields": {"records": landed}})
        unconfirmed = sum(len(taken) for taken in unsure.values())
        with self._lock:
            self._lost, self._unconfirmed = len(lost), unconfirmed
        if lost:
            log.error(
                "run records lost at shutdown: the store stayed unavailable",
                extra={"fields": {"lost": len(lost)}},
            )
            _listed(lost, "lost")
        if unsure:
            log.warning(
                "run records not confirmed at shutdown: a write to the store was still under way",
                extra={"fields": {"records": unconfirmed}},
            )
            every = [item for taken in unsure.values() for item in taken]
            _listed(every, "not confirmed", logging.WARNING)
        for write, taken in unsure.items():
            write.add_done_callback(functools.partial(self._ended, taken=taken))

    def _ended(self, write: Future[Any], taken: Waited) -> None:
        """A write under way at the stop ended (in its thread, or at once in ``say``)."""
        with self._lock:
            self._unconfirmed -= len(taken)
            failed = write.cancelled() or write.exception() is not None
            if failed:
                self._lost += len(taken)
        if not failed:
            log.info(LANDED, extra={"fields": {"records": len(taken)}})
            return
        error = "cancelled" if write.cancelled() else str(write.exception())
        log.error(
            "run records lost at shutdown: the write under way failed",
            extra={"fields": {"records": len(taken), "error": error}},
        )
        _listed(taken, "lost")


def _listed(items: Waited, what: str, level: int = logging.ERROR) -> None:
    """Each record (up to ``LOST_LISTED``) with its run, attempt and status, in time order (a
    record the store refused alone went to the back of the line), for an operator to repair
    the history: the next start sees of them only what the store holds (a ``running`` record
    it marks ``interrupted``, or none: the slot is then missed, and caught up or counted as
    not run)."""
    every = sorted(items, key=lambda item: (item[1][0].scheduled_at, item[0]))
    for (run, attempt), (record, _) in every[:LOST_LISTED]:
        log.log(
            level,
            f"run record {what} at shutdown",
            extra={"fields": {"run": run, "attempt": attempt, "status": record.status}},
        )
    if len(items) > LOST_LISTED:
        log.log(
            level,
            f"more run records {what} at shutdown, not listed",
            extra={"fields": {"more": len(items) - LOST_LISTED}},
        )
