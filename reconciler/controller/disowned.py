"""The runs a lapse took from this replica (``--ha``): going on here, ended by another.

A replica frozen (SIGSTOP, a paused VM) or cut off past its lease is judged gone by the
others: the first to see it marks its runs ``interrupted`` (``ProcessDied``:
``controller.sweep.interrupt_gone``) and takes its tasks, whose next runs then start there (the
interrupted record holds no ``Forbid`` or ``Replace`` run back). Resumed, this replica let its
commands run on beside those, and wrote their ends over the records the others wrote (and had
told of). So after a lapse (``Cluster._lapsed``), before it starts anything again, it reads the
records of the runs going here: a run another replica ended so is no longer its own: its
command is stopped, and its end is not recorded (``RunExecution._complete``); the record the
others wrote stands, and is what this replica's listeners hear. Each is said once, when it is
stopped. (A run another replica also asked to stop, ``Replace``, is left to that request:
stopped, and recorded ``failed``, ``Replaced``, as the request says.)

A command that ended while this replica could not renew (it exited during the freeze, and the
loop hears of it as it resumes, before the renewal) would have its end written at once: so an
end that comes a lease or more after the last renewal, when the others may have judged this
replica gone, waits for the renewal's look before it is recorded (or for a stop: crontask
stopping), and is not recorded if the run was another's by then. A replica that renews in time
never holds an end so.

At each renewal for a lease after the lapse, not once: a replica that read the members before
this one renewed may mark its runs just after (its sweep follows its renewal). Never outside
that window: a replica that renewed in time, however slowly, was judged live by the others
(``membership``), and keeps its runs whatever it reads. A run whose work outlives the replica
(a Job) is not marked by the others (its new owner adopts it), so is never found here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from reconciler.aio import ended, first_of, in_thread
from reconciler.controller.active import ActiveRun
from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import PROCESS_DIED, RunRecord, RunStatus
from reconciler.membership.base import Timing
from reconciler.store.base import RunStore

log = logging.getLogger("crontask.cluster")

DISOWNED = (
    "run stopped: this replica's membership had lapsed and another replica recorded the run"
    " interrupted meanwhile; its end is not recorded here"
)


class Disowned:
    """Looks for the runs going here that another replica ended during a lapse, for a lease
    after each lapse, and stops them; holds the ends that come when the lease may have run out
    (``last_renewal``: when the last renewal that worked began) until it has looked."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        me: str,
        timing: Timing,
        monotonic: Callable[[], float],
        last_renewal: Callable[[], float],
    ) -> None:
        self.dispatcher = dispatcher
        self.me = me
        self.window = timing.lease_seconds
        self._monotonic = monotonic
        self._last_renewal = last_renewal
        self._until: float | None = None  # the end of the window after the latest lapse
        # Clear from a lapse (suspected, or found) until a look after it worked.
        self._looked = asyncio.Event()
        self._looked.set()
        dispatcher.before_end = self.before_end

    def lapsed(self) -> None:
        """This replica's membership had lapsed: its runs are looked at from now on."""
        self._until = self._monotonic() + self.window
        self._looked.clear()

    async def before_end(self, active: ActiveRun) -> None:
        """Before ``active``'s end is recorded: if the lease may have run out since the last
        renewal, wait for the look that follows the next one (``active.disowned`` then says
        whether the run was another's), or for the run to be stopped (crontask stopping)."""
        if self._monotonic() - self._last_renewal() >= self.window:
            self._looked.clear()
        if not self._looked.is_set():
            woken = active.woken()
            await first_of(self._looked, ended(woken))
            woken.cancel()  # not stopped: nothing waits for it any more

    async def look(self, store: RunStore) -> None:
        """Stop the runs going here that another replica ended meanwhile (within the window
        after a lapse; nothing otherwise). A store that fails is tried again at the next call
        (the ends held meanwhile wait for it)."""
        if self._until is not None and self._monotonic() > self._until:
            self._until = None
        going = self.dispatcher.begun() if self._until is not None else []
        if not going:
            self._looked.set()
            return
        try:
            ended = await in_thread(ended_elsewhere, store, self.me, going)
        except Exception as err:
            log.warning(
                "could not read the records of the runs going here after a lapse; tried again"
                " at the next renewal",
                extra={"fields": {"runs": len(going), "error": str(err)[:200]}},
            )
            return
        for record in ended:
            if self.dispatcher.disown(record):
                log.warning(
                    DISOWNED,
                    extra={
                        "fields": {"task": record.task, "run": record.id, "attempt": record.attempt}
                    },
                )
        self._looked.set()


def ended_elsewhere(
    store: RunStore, me: str, going: Collection[tuple[str, int]]
) -> list[RunRecord]:
    """Blocking. Of the attempts ``going`` here (``(run id, attempt)``), the records another
    replica (or a crontask without ``--ha``) marked interrupted as its owner's gone: not any
    record that is no longer ``running`` (its own end, written while this was read), nor one
    another replica asked to stop (``Replace``), which is stopped and recorded as the request
    says (``controller.sweep``)."""
    still = {(r.id, r.attempt) for r in store.running() if r.owner == me}
    found: list[RunRecord] = []
    for run, attempt in going:
        if (run, attempt) in still:
            continue  # most runs: no read of their own
        record = store.get(run, attempt)
        if (
            record is not None
            and record.owner == me
            and record.status is RunStatus.INTERRUPTED
            and record.reason == PROCESS_DIED
        ):
            found.append(record)
    if not found:
        return found
    asked = {(run, attempt) for run, attempt, _ in store.stop_requests(me, _keys(found))}
    return [r for r in found if (r.id, r.attempt) not in asked]


def _keys(records: list[RunRecord]) -> list[tuple[str, int]]:
    return [(r.id, r.attempt) for r in records]
