"""A run decided before it starts, looked at again as it starts.

The dispatcher decides a slot and claims it a little ahead of its instant (``controller.dispatch``);
the execution then waits for the instant (``controller.execution``). This process may have been
away meanwhile (SIGSTOP, a frozen VM): its membership may have lapsed, its task moved, its
startingDeadlineSeconds passed, another replica ended its record. A start that comes late is
looked at again here before it happens (``_late``); a busy machine, a little late, pays nothing
more than a look at the fence's clock. A run decided at its slot can wait too before it starts:
for the runs it replaces to die (``Replace``: up to the kill grace), for its claim (a slow store,
another replica's run to end). It is looked at the same way once its claim is in, and does not
start either if its task was removed, changed or handed over meanwhile (``_waited``); only its
wait for the runs it replaces does not count against its startingDeadlineSeconds: the slot was
decided within it and stopped them, and a CronJob creates its Job as it deletes the old ones. A run
stopped before it began (replaced by a newer slot, crontask stopping) is recorded as a waiting
retry stopped so is (``skipped``, ``interrupted`` at shutdown), never as an attempt that failed
(``_stopped_first``).

Away longer than the task's interval, the newest slot due is handed over as it resumes, and
only that one may run: a first attempt decided ahead of an older slot that has not begun is
recorded ``Superseded`` and holds its slot no longer (``supersede_ahead``), so the newest is not
skipped for a run that never started (Forbid), nor does the old one start late. Only one past
its instant by more than its patience: sooner, its own wait (a command's spawner thread) may be
starting it as the loop resumes (a process started and killed would be worse than the newest
slot skipped), or it merely waits for a slow claim (the process was never away).

With replicas (``--ha``), a first attempt whose claim the store holds (a hanging store)
holds its task under Forbid, and the scheduled slots and catch-ups that come meanwhile are
turned away (``turn_away``): the older ones recorded ``ConcurrencyForbid`` as a later one comes,
the latest kept unrecorded. When the claim is answered (``_overtaken``), if it was held
``HELD_AWAY`` seconds or more and ``SUPERSEDE_AFTER`` slots or more were turned away, the held
attempt does not start (``Superseded``) and the latest runs instead, as a ``catchup``; else it
starts and the latest gets its skip (the task handed over meanwhile, it is let go unwritten:
the new owner's catch-up may claim it). A catch-up (and a manual run) is never superseded so: a
store slower than the interval still runs (every other slot, with one turned away per claim),
and so does one merely slow (a claim answered within seconds, however many slots came). Without
replicas a claim is answered within ``ANSWER_WAIT`` (the run goes on unchecked): nothing is kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from reconciler.controller.active import HANDED_OVER, ActiveRun
from reconciler.controller.handover import Handover
from reconciler.controller.recorder import Recorder
from reconciler.controller.skips import SUPERSEDED, skip_of
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.runner.base import starts_at

log = logging.getLogger("crontask.runner")

MISSED_DEADLINE = "MissedDeadline"
# A run decided ahead whose start comes later than this after its slot is looked at again in
# the store (``_late``): this process may have been away long enough (SIGSTOP, a frozen VM)
# for another crontask to judge it dead and end its claim. Less is a busy machine: a storm of
# thousands of slots in one second starts some runs seconds late, and must not pay a store
# read each. A replica's fence (its renew deadline) and startingDeadlineSeconds are looked at
# whatever the delay, in memory.
AWAY_AFTER = 10.0
# How many scheduled slots turned away for a first attempt waiting for its claim make it not
# start once answered (``_overtaken``). One is what a store merely slower than the interval
# turns away at each claim: superseding then would cost every other run (the catch-up's own
# claim turns the next slot away), so the held run starts, at most about two intervals late.
SUPERSEDE_AFTER = 2
# ... and how long its claim must have been held (the loop's clock, from its decision): less is
# a store merely slow (a locked SQLite file, a busy database), whose held run still starts, as
# under any policy; longer, the store hung, as a process away does (``AWAY_AFTER``).
HELD_AWAY = AWAY_AFTER
FORBID = "ConcurrencyForbid"


@dataclasses.dataclass(slots=True)
class TurnedAway:
    """The latest slot of a task turned away under Forbid for ``holder`` (the id of a first
    attempt waiting for its claim), not recorded yet; ``count``: how many were in all."""

    definition: Definition
    record: RunRecord  # as decided: its skip is ``skip_of(record, FORBID, message)``
    message: str
    holder: str
    count: int


class LateStarts:
    """The second look of :class:`~reconciler.controller.dispatch.Dispatcher` at a run decided
    before it starts (a mixin: the dispatcher holds the state declared here; ``_held`` and
    ``_abandon`` are ``RunExecution``'s, shared with the retries)."""

    recorder: Recorder
    owner: str
    clock: Callable[[], datetime]
    handover: Handover | None
    paused: str | None
    owns: Callable[[str], bool]
    fence: Callable[[], None]
    _active: dict[str, dict[str, ActiveRun]]
    _held: Callable[[ActiveRun, RunRecord], Awaitable[bool]]
    _abandon: Callable[[RunRecord, str, str | None], Awaitable[None]]
    _let_go: Callable[[ActiveRun], None]
    _skip: Callable[[RunRecord, str, str], RunRecord]  # SlotSkips'
    # By run id, until the run ends: how long a run that replaces others waited for them to
    # end (``ReplaceWaits``), which its startingDeadlineSeconds does not count (``_waited``).
    _replace_waited: dict[str, float]
    fire: Callable[[Definition, datetime, Trigger], RunRecord]  # the Dispatcher's
    _closing: bool
    # By task: its latest slot turned away for a first attempt waiting for its claim.
    _turned_away: dict[str, TurnedAway]

    def turn_away(
        self, definition: Definition, record: RunRecord, running: dict[str, ActiveRun], why: str
    ) -> RunRecord:
        """Forbid turns ``record``'s slot away for the runs going (``why``). Its skip record
        is returned; it is written now, unless, with replicas, the one run going is a scheduled
        first attempt waiting for its claim and the slot is scheduled or a catch-up (the latest
        missed as the fence lifted): then it is kept until that claim is answered
        (``_overtaken``), and the slot turned away before it for that run gets its skip now
        (only the latest may run instead). A catch-up fired by ``_overtaken`` is never the held
        run: it is scheduled only. The same slot again (a clock stepped back) is the one kept."""
        held = next(iter(running.values())) if len(running) == 1 else None
        if (
            held is None
            or self.handover is None
            or record.trigger not in (Trigger.SCHEDULE, Trigger.CATCHUP)
            or held.record.trigger is not Trigger.SCHEDULE
            or not held.claiming
            or held.record.attempt != 1
        ):
            return self._skip(record, FORBID, why)
        count = 1
        if (before := self._turned_away.get(definition.key)) is not None:
            if before.record.id == record.id and before.holder == held.record.id:
                return skip_of(record, FORBID, why)  # kept already, and counted
            self._skip(before.record, FORBID, before.message)
            count += before.count if before.holder == held.record.id else 0
        self._turned_away[definition.key] = TurnedAway(
            definition, record, why, held.record.id, count
        )
        return skip_of(record, FORBID, why)

    def turned_away_end(self, active: ActiveRun) -> None:
        """``active`` will not be superseded now (it started, ended, or will not start): the
        slot kept for it (``turn_away``) gets its skip record."""
        turned = self._turned_away.get(active.record.task)
        if turned is not None and turned.holder == active.record.id:
            del self._turned_away[active.record.task]
            self._skip(turned.record, FORBID, turned.message)

    def turned_away_drop(self, key: str, *, skip: bool = True) -> None:
        """``key``'s task changed (suspended, resumed, edited: ``account_for_slots``): the slot
        kept for its held run (``turn_away``) was decided under the definition before, and
        gets its skip record now rather than run as a catch-up under it. Removed, likewise:
        no replica will claim it (a task declared again counts its slots from then on). Handed
        over (``skip`` False), it is let go unwritten: the new owner's catch-up may claim it
        (the latest slot missed), and a skip written when the held claim is answered could
        land first, and the latest slot would run nowhere."""
        if (turned := self._turned_away.pop(key, None)) is not None and skip:
            self._skip(turned.record, FORBID, turned.message)

    def _overtaken(self, active: ActiveRun) -> None:
        """``active``'s claim is answered: if ``SUPERSEDE_AFTER`` slots or more of its task were
        turned away for it meanwhile and the store held its claim ``HELD_AWAY`` seconds or
        more (it hung: not merely slow), it does not start (stopped ``Superseded``: its record is
        written as it looks next) and the latest of them is fired at once as a ``catchup``
        (within its startingDeadlineSeconds, if any: ``Dispatcher.fire``), which nothing
        supersedes so in turn (``turn_away``). Else (or its task changed, this replica is
        fenced, crontask stops) the latest gets its skip. (A task handed over is let go by the
        pass that says so, ``turned_away_drop``: not on ``owns`` alone, which a task moved away
        and back before that pass would leave with no record.)"""
        turned = self._turned_away.get(active.record.task)
        if turned is None or turned.holder != active.record.id:
            return
        decided = active.decided_at
        if (
            turned.count < SUPERSEDE_AFTER
            or decided is None
            or asyncio.get_running_loop().time() - decided < HELD_AWAY
            or active.stop_reason is not None
            or active.no_retry is not None
            or self.paused is not None
            or self._closing
        ):
            self.turned_away_end(active)
            return
        del self._turned_away[active.record.task]
        log.info(
            "run superseded as its claim came in: later slots were turned away for it",
            extra={"fields": {"task": turned.definition.key, "run": active.record.id}},
        )
        self._supersede(active)
        self.fire(turned.definition, turned.record.scheduled_at, Trigger.CATCHUP)

    def supersede_ahead(self, definition: Definition, slot: datetime) -> None:
        """A later slot of ``definition``, ``slot``, is decided now (``Dispatcher.fire``): a
        first attempt decided ahead of an older slot and not begun (this process was away
        between its claim and its instant: SIGSTOP, a frozen VM) does not start, as only the
        latest missed slot may run; its record says ``Superseded``, and it holds its slot no
        longer, so the concurrency policy does not count it. Only one whose instant is past
        by more than its ``patience`` (``_overdue``): sooner, its own wait may be starting it,
        or it only waits for a slow claim (the process was not away): it starts, a little
        late, as any run."""
        # On every slot's path: the clocks are read only for a run that may be superseded.
        older = [
            a for a in self._active.get(definition.key, {}).values() if _older_unstarted(a, slot)
        ]
        if not older:
            return
        now, wall = asyncio.get_running_loop().time(), self.clock()
        for active in older:
            if _overdue(active, definition, now, wall):
                log.info(
                    "run superseded before it started: a later slot came first",
                    extra={"fields": {"task": definition.key, "run": active.record.id}},
                )
                self._supersede(active)

    def _supersede(self, active: ActiveRun) -> None:
        """``active`` does not start: a later slot runs instead. Its task records it
        ``Superseded`` (``_stopped_first``, or the attempt stopped before it began), on a
        later turn; its slot is free now."""
        active.stop(SUPERSEDED)
        self._let_go(active)

    async def _late(self, definition: Definition, active: ActiveRun, start_at: float) -> bool:
        """Whether a run decided and claimed ahead of its slot (``start_at``, on the loop's
        clock) does not start after all, as its slot comes. This process may have been away
        since the claim (SIGSTOP, a frozen VM: the clocks jumped past the slot): its membership
        may have lapsed, its task moved, its deadline passed, another replica ended its record.
        On time and not fenced (the usual case) that costs a look at the fence's clock; else
        it is looked at as one away (``_looked_again``). True: it does not start; its record
        says why."""
        record = active.record
        self._overtaken(active)
        if await self._stopped_first(active):
            return True
        self.fence()
        # Its wait for the runs it replaces (a ``Replace`` slot decided a hair before its
        # instant) is accounted for: neither a machine away nor late (``_waited``).
        waited = self._replace_waited.get(record.id, 0.0)
        late = max(
            asyncio.get_running_loop().time() - start_at,
            (self.clock() - record.scheduled_at).total_seconds(),
        )
        if self.paused is None and late - waited <= AWAY_AFTER:
            return await self._missed(definition, record, waited)  # a busy machine, not away
        return await self._looked_again(definition, active)

    async def _waited(self, definition: Definition, active: ActiveRun) -> bool:
        """Whether a run decided as its slot fired (not ahead: ``_late``) does not start after
        all, its start having waited since its decision: for the runs it replaces to end
        (``Replace``: up to the kill grace), or for its claim (a store slow to answer; with
        replicas, another replica's run to end). It starts as a run decided ahead does as its
        slot comes: within its startingDeadlineSeconds, and not while the fence holds this
        replica (held meanwhile); and not if its task was removed, changed or handed over
        meanwhile (``Dispatcher.cancel_retries``): it would run a definition no longer in force
        here, beside the runs of the one that is. Not held, that costs a look at the clocks.
        Its wait for the runs it replaces (``_replace_waited``) is not counted against the
        deadline: the slot was decided within it (``Dispatcher._refused_at_once``) and stopped
        them, and a slot that replaces a run runs, as a CronJob's; a slow claim after that
        wait, or a loop late, still counts. Held (this process may have been away), it is
        looked at from its slot. True: it does not start; its record (the claim, written) says
        why."""
        record = active.record
        self._overtaken(active)
        if await self._stopped_first(active):
            return True
        if active.no_retry is not None:
            await self._abandon(record, active.no_retry, None)
            return True
        self.fence()
        if self.paused is not None:
            return await self._looked_again(definition, active)
        return await self._missed(definition, record, self._replace_waited.get(record.id, 0.0))

    async def _stopped_first(self, active: ActiveRun) -> bool:
        """Whether the run was stopped before it began (``Replace``: a newer slot replaced it;
        shutdown): it is recorded as a waiting retry stopped so is (``_abandon``: ``skipped``
        with its reason, ``interrupted`` at shutdown), not as an attempt that failed: nothing
        of it ran, and a failure would count for lastFailureTime, alerts, notifications and
        failedRunsHistoryLimit."""
        if (reason := active.stop_reason) is None:
            return False
        # Its own account of why, if it was stopped with one (a lapse's: ``drop_claiming``),
        # taken from it here: let go of, it is no longer found by its record.
        await self._abandon(active.record, reason, active.stop_why)
        return True

    async def _missed(self, definition: Definition, record: RunRecord, waited: float = 0.0) -> bool:
        """Whether ``record`` is past its startingDeadlineSeconds, when it is recorded so;
        ``waited`` seconds since its slot (for the runs it replaces to end) not counted."""
        if (why := _past_deadline(definition, record, self.clock(), waited)) is None:
            return False
        await self._abandon(record, MISSED_DEADLINE, why)
        return True

    async def _looked_again(self, definition: Definition, active: ActiveRun) -> bool:
        """The look at a run whose process may have been away before it starts: it starts only
        if the fence lets it (held meanwhile, as a retry: ``_held``), its task is still this
        replica's and was not handed away and back (a lapse), it is within its
        startingDeadlineSeconds, and the store still holds its claim. True: it does not start;
        its record says why (``HandedOver``, ``MissedDeadline``, ...), unless someone else
        ended it (a replica that took the task over marked it interrupted): then as it is."""
        record = active.record
        await self._held(active, record)
        why, message = active.stop_reason, None
        key = record.task
        if why is None and (
            not self.owns(key) or (self.handover is not None and self.handover.inherited(key))
        ):
            why = HANDED_OVER
        if why is None and (missed := _past_deadline(definition, record, self.clock())):
            why, message = MISSED_DEADLINE, missed
        if not await self._still_claimed(record):
            return True
        # Stopped during the read (a later slot superseded it, the task was handed over).
        why = why or active.stop_reason
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


def _older_unstarted(active: ActiveRun, slot: datetime) -> bool:
    """Whether ``active`` is a first attempt decided ahead of a slot before ``slot`` (its
    ``start_at`` kept until it begins or retries) that has neither begun nor been stopped."""
    record = active.record
    return (
        active.start_at is not None
        and not active.begun
        and active.stop_reason is None
        and record.attempt == 1
        and record.scheduled_at < slot
    )


def _overdue(active: ActiveRun, definition: Definition, now: float, wall: datetime) -> bool:
    """Whether ``active``'s slot is past by more than its ``patience`` and its claim answered:
    a run that late was away (SIGSTOP, a frozen VM), not merely behind a slow claim (which keeps
    it from starting at all until answered); and not one its own wait may be starting now
    (a command's spawner thread, until ``patience`` past its instant on the loop's clock: a
    stop then is race-free). The definition ``active`` was decided with is the one in force
    unless its task changed since (``no_retry`` set): then the longest patience bounds it."""
    # Its claim unanswered: sent ahead (``claim``) or being awaited (``claiming``, the claim
    # taken out of ``claim`` as its attempt began to wait for it).
    if active.start_at is None or active.claiming:
        return False
    if active.claim is not None and not active.claim.done():
        return False
    bound = patience(definition) if active.no_retry is None else AWAY_AFTER
    if (wall - active.record.scheduled_at).total_seconds() <= bound:
        return False
    return not starts_at(active.attempt) or now > active.start_at + bound


def patience(definition: Definition) -> float:
    """How long after its instant a run's own wait (a command's spawner thread) may still
    start it without the loop looking again (``_late``): past its startingDeadlineSeconds,
    or so late that this process may have been away."""
    deadline = definition.task.spec.starting_deadline_seconds
    return AWAY_AFTER if deadline is None else min(AWAY_AFTER, float(deadline))


def _past_deadline(
    definition: Definition, record: RunRecord, now: datetime, waited: float = 0.0
) -> str | None:
    """Why ``record`` may no longer start at ``now``: past its task's startingDeadlineSeconds
    (which bounds a slot's first start: not a retry's, nor a manual run's), ``waited`` of its
    seconds since its slot not counted; None if it may."""
    deadline = definition.task.spec.starting_deadline_seconds
    if deadline is None or record.attempt > 1 or record.trigger is Trigger.MANUAL:
        return None
    late = (now - record.scheduled_at).total_seconds()
    if late - waited <= deadline:
        return None
    return missed_deadline(late, deadline, waited)


# How a MissedDeadline skip's message begins: it says itself that the run did not start.
NOT_STARTED = "not started"


def missed_deadline(late: float, deadline: int, waited: float = 0.0) -> str:
    """What a ``MissedDeadline`` skip says (every one: decided past its deadline, or looked at
    again before it starts): ``late`` seconds after its slot, ``waited`` of them for the runs
    it replaces to end, which the deadline does not count (``LateStarts._waited``)."""
    said = f"{NOT_STARTED}: {late:.1f}s after its slot, past startingDeadlineSeconds={deadline}"
    if waited >= 0.05:  # as said to a tenth
        said += f" (not counting the {waited:.1f}s it waited for the runs it replaces to end)"
    return said
