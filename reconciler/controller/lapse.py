"""What a lapse of this replica's membership leaves to do (``controller.cluster``).

A replica whose lease ran out (cut off from the store, paused past its lease) may have had its
tasks taken meanwhile by another replica, which ran their slots and recorded those it missed,
counted from each task's latest record in the store (one ``Superseded`` record for the gap).
So what this replica holds of those tasks in memory is out of date, and is dropped or read again:

- its scheduled first attempts still waiting for their claim do not start (``HandedOver``): the
  store may refuse them, and under Forbid each would turn the next slot away meanwhile;
- the tasks with slots to catch up count them from their latest record in the store, as a task
  that comes from another replica does, not from where this replica's ledger stopped: a
  ``Superseded`` record of slots another replica ran would say that they did not run. Or from
  the latest of this replica's own records still waiting for the store, if later: those are
  written once it answers (the skips of slots not started for want of a checked claim), and
  counted again they would be counted twice.

Those kept skips are written as they are, even if another replica took the tasks meanwhile and
counted their slots in its own catch-up (it could not see them): a slot may then be counted
twice. Dropping them when the lease ran out lost slots instead: a claim of a later slot on its
way then could still land, and the catch-up counted from it.

The store's read of the latest records may fail, or not be answered within ``ANSWER_WAIT`` (a
store that takes bytes and never answers: the read goes on, and its answer serves the next
look): runs are held (the dispatcher stays paused)
and it is tried again at each renewal, for a renew deadline at most; then the tasks count from
the ledger, as before the lapse was known, rather than stay paused without end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from reconciler.aio import in_thread, retrieved, within
from reconciler.controller.active import HANDED_OVER
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.lane import ANSWER_WAIT
from reconciler.core.runs import Trigger
from reconciler.store.base import RunStore, StoreUnavailable

log = logging.getLogger("crontask.cluster")

# The dispatcher's paused reason while the anchors cannot be read (``Cluster.tick``).
UNREAD = "the tasks' last slots could not be read from the run store after a lapse"


class Lapse:
    def __init__(
        self,
        dispatcher: Dispatcher,
        catch_up: Callable[[Mapping[str, datetime]], None],
        monotonic: Callable[[], float],
        patience: float,
        wait: float | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self._catch_up = catch_up  # Reconciler.catch_up_unstarted
        self._monotonic = monotonic
        self._patience = patience  # how long failed reads hold runs (the renew deadline)
        # How long one look waits for the store's answer.
        self._wait = ANSWER_WAIT if wait is None else wait
        self._failing: float | None = None  # when the reads began to fail (monotonic)
        # The read still in flight, with the tasks it asked (``anchors``), and whether it was
        # asked before the latest lapse (its answer is then not this lapse's).
        self._reading: tuple[list[str], asyncio.Future[dict[str, datetime]]] | None = None
        self._stale = False
        # The tasks whose next catch-up counts from the store (see the module docstring).
        self._recount: set[str] = set()

    def hand_back(self, keys: Collection[str]) -> None:
        """``keys``, this replica's tasks, are handled as handed away and back."""
        self._failing = None  # a new lapse: its reads get the whole renew deadline
        self._stale = True  # and read anew: the others may have run the tasks since
        dispatcher = self.dispatcher
        # Before the retries: a claim unanswered is no retry, and would hold its slot.
        dispatcher.drop_claiming(keys, HANDED_OVER)
        for key in keys:
            # A retry (waiting, held by the fence, or after an attempt still running) is not
            # carried over a handover: another replica may be running the task now.
            dispatcher.cancel_retries(key, HANDED_OVER)
            if dispatcher.handover is not None:
                dispatcher.handover.inherit(key)  # its next run looks in the store
        self._recount.update(keys)

    async def anchors(self, store: RunStore) -> Mapping[str, datetime] | None:
        """The slot each task to catch up from the store counts from (those left out count
        from the ledger), read from ``store`` now; None if it did not answer and runs are
        held (an empty map, the ledger, once they were held for the patience)."""
        keys = sorted(self._recount & self.dispatcher.unstarted)  # few: a lapse's
        if not keys:
            return {}
        unanswered = StoreUnavailable(f"the run store did not answer within {self._wait:g}s")
        reading = await self._read(store, keys)
        try:
            # Bounded: a store that takes bytes and never answers held the renewals (the
            # read is awaited by a tick) and the stop; the read goes on, and a later call
            # for the same tasks takes its answer rather than ask again.
            if reading is None:
                raise unanswered  # the read before is still in flight: not this one's answer
            found = dict(await within(reading, self._wait, unanswered))
        except Exception as err:
            fields = {"tasks": len(keys), "error": str(err)}
            now = self._monotonic()
            self._failing = now if self._failing is None else self._failing
            if now - self._failing < self._patience:
                log.warning(
                    "could not read the tasks' last slots after a lapse; runs are held and it"
                    " is tried again at the next renewal",
                    extra={"fields": fields},
                )
                return None
            log.warning(
                "could not read the tasks' last slots after a lapse for the renew deadline;"
                " starting runs, their missed slots counted from this replica's memory",
                extra={"fields": {**fields, "seconds": round(now - self._failing, 1)}},
            )
            self._failing = None
            return {}
        finally:
            if reading is not None and reading.done():
                self._reading = None
        self._failing = None
        wanted = frozenset(keys)
        for record in self.dispatcher.recorder.held():  # written later: counted from there
            if record.task in wanted and record.trigger in (Trigger.SCHEDULE, Trigger.CATCHUP):
                at = max(record.scheduled_at, found.get(record.task, record.scheduled_at))
                found[record.task] = at
        return found

    async def _read(
        self, store: RunStore, keys: list[str]
    ) -> asyncio.Future[dict[str, datetime]] | None:
        """The read of ``keys``' last slots for this lapse: the one in flight, or a new one;
        None if a read of other tasks, or of a lapse before, was still in flight (it is given
        ``wait`` to end; the next look reads anew): one read at a time, or a store that answers
        renewals and not these reads would hold a thread of the pool that source reads share
        for each lapse. A look waits ``wait`` at most either way."""
        if self._reading is not None:
            asked, reading = self._reading
            if asked == keys and not self._stale:
                return reading
            if not reading.done():
                await asyncio.wait({reading}, timeout=self._wait)
                if reading.done():
                    self._reading = None
                return None
        read = asyncio.ensure_future(in_thread(store.last_slots, keys))
        read.add_done_callback(retrieved)  # its answer may come after nobody waits for it
        self._reading, self._stale = (keys, read), False
        return read

    def catch_up(self, anchors: Mapping[str, datetime]) -> None:
        """The slots not started are caught up (``Reconciler.catch_up_unstarted``), those of
        the tasks to count from the store from ``anchors`` (read by ``anchors``)."""
        self._catch_up(anchors)
        self._recount.clear()
