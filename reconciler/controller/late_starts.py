"""A run decided and claimed ahead of its slot, looked at again as its slot comes.

The dispatcher decides a slot and claims it a little ahead of its instant (``controller.dispatch``);
the execution then waits for the instant (``controller.execution``). This process may have been
away meanwhile (SIGSTOP, a frozen VM): its membership may have lapsed, its task moved, its
startingDeadlineSeconds passed, another replica ended its record. A start that comes late is
looked at again here before it happens (``_late``); a busy machine, a little late, pays nothing
more than a look at the fence's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from reconciler.controller.active import HANDED_OVER, ActiveRun
from reconciler.controller.handover import Handover
from reconciler.controller.recorder import Recorder
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus

log = logging.getLogger("crontask.runner")

MISSED_DEADLINE = "MissedDeadline"
# A run decided ahead whose start comes later than this after its slot is looked at again in
# the store (``_late``): this process may have been away long enough (SIGSTOP, a frozen VM)
# for another crontask to judge it dead and end its claim. Less is a busy machine: a storm of
# thousands of slots in one second starts some runs seconds late, and must not pay a store
# read each. A replica's fence (its renew deadline) and startingDeadlineSeconds are looked at
# whatever the delay, in memory.
AWAY_AFTER = 10.0


class LateStarts:
    """The second look of :class:`~reconciler.controller.dispatch.Dispatcher` at a run decided
    ahead (a mixin: the dispatcher holds the state declared here; ``_held`` and ``_abandon``
    are ``RunExecution``'s, shared with the retries)."""

    recorder: Recorder
    owner: str
    clock: Callable[[], datetime]
    handover: Handover | None
    paused: str | None
    owns: Callable[[str], bool]
    fence: Callable[[], None]
    _held: Callable[[ActiveRun, RunRecord], Awaitable[bool]]
    _abandon: Callable[[RunRecord, str, str | None], Awaitable[None]]

    async def _late(self, definition: Definition, active: ActiveRun, start_at: float) -> bool:
        """Whether a run decided and claimed ahead of its slot (``start_at``, on the loop's
        clock) does not start after all, as its slot comes. This process may have been away
        since the claim (SIGSTOP, a frozen VM: the clocks jumped past the slot): its membership
        may have lapsed, its task moved, its deadline passed, another replica ended its record.
        On time and not fenced (the usual case) that costs a look at the fence's clock; else
        it starts only if the fence lets it (held meanwhile, as a retry: ``_held``), its task
        is still this replica's and was not handed away and back (a lapse), it is within its
        startingDeadlineSeconds, and the store still holds its claim. True: it does not start;
        its record says why (``HandedOver``, ``MissedDeadline``, ...), unless someone else
        ended it (a replica that took the task over marked it interrupted): then as it is."""
        record = active.record
        if active.stop_reason is not None:
            return False  # stopped meanwhile: the attempt reports it without starting
        self.fence()
        late = max(
            asyncio.get_running_loop().time() - start_at,
            (self.clock() - record.scheduled_at).total_seconds(),
        )
        deadline = definition.task.spec.starting_deadline_seconds
        if self.paused is None and late <= AWAY_AFTER:
            late = (self.clock() - record.scheduled_at).total_seconds()
            if deadline is None or late <= deadline:
                return False  # a busy machine, not one away: its claim is still its own
            await self._abandon(record, MISSED_DEADLINE, _past_deadline(late, deadline))
            return True
        await self._held(active, record)
        why, message = active.stop_reason, None
        key = record.task
        if why is None and (
            not self.owns(key) or (self.handover is not None and self.handover.inherited(key))
        ):
            why = HANDED_OVER
        late = (self.clock() - record.scheduled_at).total_seconds()
        if why is None and deadline is not None and late > deadline:
            why, message = MISSED_DEADLINE, _past_deadline(late, deadline)
        if not await self._still_claimed(record):
            return True
        if why is not None:
            await self._abandon(record, why, message)
        return why is not None

    async def _still_claimed(self, record: RunRecord) -> bool:
        """Whether the store still holds ``record``'s claim as this process wrote it (one
        read): False if it was ended, by a replica that took its task over, say. Unknown (the
        store is unavailable) counts as held: the fence says this replica's membership did."""
        try:
            stored = await self.recorder.call(self.recorder.store.get, record.id, record.attempt)
        except Exception:
            log.warning(
                "could not read a late run's record; the fence says it is still ours",
                extra={"fields": {"task": record.task, "run": record.id}},
            )
            return True
        if stored is None or (stored.status is RunStatus.RUNNING and stored.owner == self.owner):
            return True  # None: its claim is still on its way (kept while the store is down)
        fields = {"task": record.task, "run": record.id, "status": str(stored.status)}
        log.warning("run not started: its record was ended meanwhile", extra={"fields": fields})
        return False


def patience(definition: Definition) -> float:
    """How long after its instant a run's own wait (a command's spawner thread) may still
    start it without the loop looking again (``_late``): past its startingDeadlineSeconds,
    or so late that this process may have been away."""
    deadline = definition.task.spec.starting_deadline_seconds
    return AWAY_AFTER if deadline is None else min(AWAY_AFTER, float(deadline))


def _past_deadline(late: float, deadline: int) -> str:
    return (
        f"it could start only {late:.1f}s after its slot, past startingDeadlineSeconds={deadline}"
    )
