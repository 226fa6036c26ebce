"""What a lapse of this replica's membership leaves to do (``controller.cluster``).

A replica whose lease ran out (cut off from the store, paused past its lease) may have had its
tasks taken meanwhile by another replica, which ran their slots and recorded those it missed,
counted from each task's latest record in the store (one ``Superseded`` record for the gap).
So what this replica holds of those tasks in memory is out of date, and is dropped or read again:

- its skips still waiting for the store (slots not started for want of a checked claim, each
  superseded by the next; a slot turned away under Forbid) are not written: the new owner's
  catch-up counted those slots, and written later they would count them twice. Dropped as soon
  as the lease has run out here, before the store answers again and the recorder writes them;
- its scheduled first attempts still waiting for their claim do not start (``HandedOver``): the
  store may refuse them, and under Forbid each would turn the next slot away meanwhile;
- the tasks with slots to catch up (and those whose skips were dropped) count them from their
  latest record in the store, as a task that comes from another replica does, not from where
  this replica's ledger stopped: a ``Superseded`` record of slots another replica ran would
  say that they did not run. If nobody took the tasks, that record is where this replica
  stopped, so the catch-up counts the dropped skips' slots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from reconciler.aio import in_thread
from reconciler.controller.active import HANDED_OVER
from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import Trigger
from reconciler.store.base import RunStore

log = logging.getLogger("crontask.cluster")


class Lapse:
    def __init__(
        self,
        store: RunStore,
        dispatcher: Dispatcher,
        catch_up: Callable[[Mapping[str, datetime]], None],
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self._catch_up = catch_up  # Reconciler.catch_up_unstarted
        # The tasks whose next catch-up counts from the store (see the module docstring).
        self._recount: set[str] = set()

    def hand_back(self, keys: Collection[str]) -> None:
        """``keys``, this replica's tasks, are handled as handed away and back."""
        dispatcher = self.dispatcher
        # Before the retries: a claim unanswered is no retry, and would hold its slot.
        dispatcher.drop_claiming(keys, HANDED_OVER)
        for key in keys:
            # A retry (waiting, held by the fence, or after an attempt still running) is not
            # carried over a handover: another replica may be running the task now.
            dispatcher.cancel_retries(key, HANDED_OVER)
            if dispatcher.handover is not None:
                dispatcher.handover.inherit(key)  # its next run looks in the store
        self.drop_skips(keys)
        self._recount.update(keys)

    def drop_skips(self, keys: Collection[str]) -> None:
        """The skips of ``keys``' slots waiting for the store are not written; their tasks
        catch up from the store instead (see the module docstring)."""
        wanted, me = frozenset(keys), self.dispatcher.owner
        dropped = self.dispatcher.recorder.drop_skips(
            lambda r: r.task in wanted and r.owner == me and r.trigger is not Trigger.MANUAL
        )
        if not dropped:
            return
        tasks = {record.task for record in dropped}
        self.dispatcher.unstarted.update(tasks)
        self._recount.update(tasks)
        log.info(
            "skips waiting for the run store dropped: the lease ran out, and the tasks' slots"
            " are counted from the store",
            extra={"fields": {"tasks": len(tasks), "skips": len(dropped)}},
        )

    async def anchors(self) -> Mapping[str, datetime] | None:
        """The latest recorded slot of each task to catch up from the store (those left out
        have none: they count from the ledger), read now; None if the store did not answer."""
        keys = sorted(self._recount & self.dispatcher.unstarted)
        if not keys:
            return {}
        try:
            return await in_thread(self.store.last_slots, keys)
        except Exception as err:
            log.warning(
                "could not read the tasks' last slots after a lapse; trying again",
                extra={"fields": {"tasks": len(keys), "error": str(err)}},
            )
            return None

    def catch_up(self, anchors: Mapping[str, datetime]) -> None:
        """The slots not started are caught up (``Reconciler.catch_up_unstarted``), those of
        the tasks to count from the store from ``anchors`` (read by ``anchors``)."""
        self._catch_up(anchors)
        self._recount.clear()
