"""The claim of a slot before its run: the part of the dispatcher that asks whether to run it.

A run starts only after the store has accepted its claim (the store refuses a second one: the
slot is not run twice). With replicas, under Forbid and Replace, the claim first looks in the
shared store for a run of the task going on another replica (``controller.handover``). A claim
the store cannot answer does not cost the run when nobody else could run it (``_keeps_claim``);
else the slot is left unstarted here, for whoever owns the task to catch up (``_unchecked``).
A manual run under Forbid or Replace whose look for another replica's run the store cannot
answer is recorded skipped (``_manual_unchecked``): that replica may be running the task.
Such a claim may have been taken all the same (only its answer was lost): the slot's next claim
here takes this replica's own row as claimed (``Handover.held``), rather than as another's.
The dispatcher sends a first attempt's claim as the slot fires (``controller.dispatch``), the
execution a retry's (``controller.execution``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from reconciler.controller.active import LAPSED, REPLACED, ActiveRun
from reconciler.controller.handover import Handover, ReplacedElsewhere
from reconciler.controller.recorder import Recorder
from reconciler.controller.skips import utc_text
from reconciler.controller.slots import SlotLedger
from reconciler.core.desired import Definition
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.core.timing import AHEAD_MAX
from reconciler.store.base import DuplicateRun, StoreUnavailable

log = logging.getLogger("crontask.runner")

# Why a slot was not started: its claim could not be checked (see ``_unchecked``).
STORE_UNAVAILABLE = "StoreUnavailable"
# How often, at most, a crontask without --ha warns that another one on its store claims the
# slots of a task it declares too, or that the store holds slots recorded after this host's
# clock (``_claimed_elsewhere``), in seconds: each of them once in that time.
SHARED_TOLD_EVERY = 600.0
# How far ahead of this host's clock a crontask whose clock agrees with it records a slot: it
# hands a slot over, and claims it, up to AHEAD_MAX before its instant (``controller.ahead``).
_AHEAD = timedelta(seconds=AHEAD_MAX)


class SkippedHere(DuplicateRun):
    """Not run, and its skip recorded here (a run of the task going on another replica, a
    manual run the store could not check): no other instance claimed the slot, so nothing
    says it did."""


class SlotClaims:
    """The claims of :class:`~reconciler.controller.dispatch.Dispatcher` (a mixin: the
    dispatcher holds the state declared here; ``_skip`` is ``RunExecution``'s)."""

    recorder: Recorder
    handover: Handover | None
    _closing: bool
    ledger: SlotLedger
    unstarted: set[str]
    _writes: set[asyncio.Task[None]]
    _skip: Callable[[RunRecord, str, str], RunRecord]
    _notify: Callable[[RunRecord], None]
    clock: Callable[[], datetime]
    _told: dict[str, float]  # when ``_claimed_elsewhere`` last warned, by warning (monotonic)
    _ahead: dict[str, datetime]  # by task: its last slot the store held ahead of the clock
    _active: dict[str, dict[str, ActiveRun]]  # the Dispatcher's
    _replacing_elsewhere: set[str]  # the Dispatcher's (``replacing``)
    _let_go: Callable[[ActiveRun], None]  # RunStops'

    def closing(self) -> bool:
        """Whether crontask is stopping (``Dispatcher.close`` was called)."""
        return self._closing

    def drop_claiming(self, keys: Collection[str], reason: str) -> None:
        """This replica's membership lapsed (``controller.lapse``): the scheduled first
        attempts of ``keys`` whose claim, sent before, is still unanswered do not start (their
        record says ``reason`` if the claim was taken) and hold their slot no longer. The
        store may yet refuse them (the task's new owner took the slot meanwhile), and under
        Forbid each would turn the next slot away for a run that never began."""
        for key in keys:
            for active in list(self._active.get(key, {}).values()):
                unanswered = active.claiming or (
                    active.claim is not None and not active.claim.done()
                )
                record = active.record
                if (
                    unanswered
                    and not active.begun
                    and record.attempt == 1
                    and record.trigger is not Trigger.MANUAL
                ):
                    # Said as the lapse's: the claim that lands later takes the task's
                    # inheritance (``Handover.claim``), and with it how its record reads.
                    active.stop(reason, LAPSED.format("run"))
                    self._let_go(active)

    def _claim_retry(
        self, definition: Definition, record: RunRecord
    ) -> asyncio.Future[bool] | None:
        """With replicas, under Forbid and Replace, a retry's claim looks for a run of its
        task going on another replica, as a first attempt's does (``handover.py``): a replica
        whose membership lapsed (paused, cut off) may find the task's new owner running it,
        another replica a manual run. Forbid: the retry is recorded skipped and is not run
        (DuplicateRun); Replace: that run is stopped first. None: the ordinary claim."""
        policy = definition.task.spec.concurrency_policy
        if self.handover is None or policy is ConcurrencyPolicy.ALLOW:
            return None
        return self._claim_exclusive(record, policy)

    def _claim_exclusive(
        self, record: RunRecord, policy: ConcurrencyPolicy
    ) -> asyncio.Future[bool]:
        """``record``'s claim, unless a run of its task is going on another replica
        (``Handover.claim``), with what ``_claim`` says: True, False (the store is
        unavailable), or DuplicateRun (do not run it; under Forbid the skip is recorded
        first, as is a manual run's the store could not check: ``_manual_unchecked``)."""
        handover = self.handover
        assert handover is not None

        def waiting(on: bool) -> None:
            """The claim waits for a run on another replica to stop, or no longer: as the wait
            for the runs it replaces here, the run has not started (``replacing``; a run asked
            for now is answered ``pending``, saying where the run it waits for is)."""
            (self._replacing_elsewhere.add if on else self._replacing_elsewhere.discard)(record.id)
            active = self._active.get(record.task, {}).get(record.id)
            if active is not None and active.start is not None:
                active.start.elsewhere = on

        async def claim() -> bool:
            try:
                why = await handover.claim(record, policy, REPLACED, self.closing, waiting)
            except ReplacedElsewhere as replaced:
                self._skip(record, REPLACED, replaced.why)
                raise SkippedHere(record.id, record.attempt) from None
            except StoreUnavailable:
                if record.trigger is Trigger.MANUAL:
                    self._manual_unchecked(record, policy)
                    raise SkippedHere(record.id, record.attempt) from None
                handover.unanswered(record)  # its insert may have been committed
                return await self._claim(record)  # as any claim the store cannot answer
            if why is not None:
                self._skip(record, "ConcurrencyForbid", why)
                raise SkippedHere(record.id, record.attempt)
            return True

        claimed = asyncio.ensure_future(claim())
        claimed.add_done_callback(lambda done: done.cancelled() or done.exception())
        return claimed

    def _claim(self, record: RunRecord) -> asyncio.Future[bool]:
        keep = self._keeps_claim(record)
        claimed = self.recorder.claim_soon(record, keep=keep)
        handover = self.handover
        if handover is None or not handover.awaits_answer(record):
            return claimed

        async def again() -> bool:
            """A claim of a slot whose earlier claim here got no answer: refused as taken,
            it may be that one (``Handover.held``)."""
            try:
                ok = await claimed
            except DuplicateRun:
                try:
                    if await handover.held(record):
                        return True
                except StoreUnavailable:
                    return False  # unchecked still: as any claim the store cannot answer
                raise
            if ok or keep:
                handover.answered(record)  # it starts (claimed, or run anyway)
            return ok

        checked = asyncio.ensure_future(again())
        checked.add_done_callback(lambda done: done.cancelled() or done.exception())
        return checked

    def shares_store_alone(self) -> bool:
        """Whether this crontask runs without replicas (``--ha``): a slot another crontask
        recorded is then one of another crontask on the same store, not the replicas'
        sharing of the work."""
        return self.handover is None

    def recorded_ahead(self, key: str, anchor: datetime | None) -> None:
        """``anchor``, the last slot of ``key`` the run store holds (or the ledger's), is where
        its catch-up counts from. Later than this host's clock, by more than a crontask whose
        clock agrees claims ahead (``_AHEAD``), it was recorded by a clock ahead of this one:
        this host's clock went back since (a restart after NTP stepped it, a pod moved to a
        node whose clock is right), or the crontask that wrote it had a clock ahead. The store
        refuses the slots up to it that ran (``_claimed_elsewhere``); the scheduler hands them
        over again all the same, counting from this host's clock."""
        if anchor is not None and anchor > self.clock() + _AHEAD:
            self._ahead[key] = anchor
        else:
            self._ahead.pop(key, None)

    def _claimed_elsewhere(self, record: RunRecord) -> None:
        """``record``'s slot was recorded by another crontask (the store refused its claim,
        or, under Forbid with a run of the task going here, its skip).
        With replicas that is their sharing of the work. Without, it is another crontask on
        the same store that declares the task too (a second one started by mistake, the old
        pod of a rolling update): the slot still runs once, but each keeps the concurrency
        policy for its own runs only, so under Forbid their runs overlap, and nothing else
        says so. Unless the slot is one of those the store held ahead of this host's clock
        when the task's catch-up read it (``recorded_ahead``): then no other crontask need be
        there, and the clock is what is warned of. Each warned every ``SHARED_TOLD_EVERY`` at
        most (each slot would be a line)."""
        fields = {"task": record.task, "run": record.id, "attempt": record.attempt}
        if not self.shares_store_alone():
            log.info("slot already claimed by another instance", extra={"fields": fields})
            return
        ahead = self._ahead.get(record.task)
        if ahead is not None and record.scheduled_at <= ahead:
            if not self._warns("ahead"):
                log.info("slot already recorded by a clock ahead", extra={"fields": fields})
                return
            log.warning(
                f"run store holds records of {record.task} written after this host's clock"
                f" (up to {utc_text(ahead)}): the clock went back, or the crontask that wrote"
                " them had a clock ahead; their slots are not run again",
                extra={"fields": fields},
            )
            return
        if not self._warns("shared"):
            log.info("slot already claimed by another instance", extra={"fields": fields})
            return
        log.warning(
            "slot already claimed by another crontask on this run store, which declares the"
            " task too: without --ha each keeps the concurrency policy for its own runs only,"
            " so their runs may overlap; run one crontask, or all of them with --ha",
            extra={"fields": fields},
        )

    def _warns(self, what: str) -> bool:
        """Whether the warning ``what`` is due: not given in the last ``SHARED_TOLD_EVERY``."""
        now = time.monotonic()
        told = self._told.get(what)
        if told is not None and now - told < SHARED_TOLD_EVERY:
            return False
        self._told[what] = now
        return True

    def _keeps_claim(self, record: RunRecord) -> bool:
        """Whether a run whose claim the store could not answer runs anyway, its records kept
        for later: without replicas, nobody else can run its slot. With replicas, a slot's can
        be run by the replica that takes the task over (it catches up the slots it finds no
        record of); a manual run's id is this replica's alone, and so are further attempts of
        a run begun here. (Under Forbid and Replace a manual run's claim also looks for a run
        on another replica, and does not start unchecked: ``_manual_unchecked``.)"""
        return self.handover is None or record.trigger in (Trigger.MANUAL, Trigger.RETRY)

    def _manual_unchecked(self, record: RunRecord, policy: ConcurrencyPolicy) -> None:
        """With replicas, a manual run under Forbid or Replace whose claim could not look for
        a run of its task on another replica (the store did not answer) is not started: run
        anyway, as ``_keeps_claim`` would have it, it could go beside that replica's run (two
        run-nows asked of two replicas, one of them cut off from the store). It is recorded
        skipped, and the run-now answer says so (``api.run_decision``); asked again, it runs
        once the store answers."""
        skipped = dataclasses.replace(
            record,
            status=RunStatus.SKIPPED,
            started_at=None,
            finished_at=record.started_at,
            reason=STORE_UNAVAILABLE,
            message="the run store did not answer, so a run of the task on another replica "
            f"could not be looked for (concurrencyPolicy {policy.value}); not started",
        )
        log.warning(
            "manual run not started: its claim could not be checked",
            extra={"fields": {"task": record.task, "run": record.id, "reason": STORE_UNAVAILABLE}},
        )
        if (active := self._active.get(record.task, {}).get(record.id)) is not None:
            active.not_begun(skipped)  # answered 503 run-undecided (``api.run_decision``)
        write = asyncio.get_running_loop().create_task(self._save_skip(skipped))
        self._writes.add(write)  # waited for at shutdown, as any skip's
        write.add_done_callback(self._writes.discard)

    async def _save_skip(self, skipped: RunRecord) -> None:
        # Saved over whatever holds its id, not only added where none does: the claim whose
        # answer was lost may have gone through, and its row (this replica's, ``running``)
        # would stand for good, a run going for the others' Forbid. A manual run's id is this
        # replica's alone (``_keeps_claim``). Kept for later while the store is unavailable,
        # and then told to the listeners once written, as a slot's skip (``Recorder.save``).
        if await self.recorder.save(skipped, written_later=self._notify):
            self._notify(skipped)

    def _unchecked(self, record: RunRecord) -> None:
        """With replicas, a slot whose claim could not be checked (the store is unavailable)
        is not run here: nor recorded, as a record from here could only take the slot's id
        and hide it from the catch-up of whoever owns the task once the store answers. If
        the task moves (this replica's membership lapses), its new owner catches the slot
        up; if it stays, this replica does (``unstarted``: see ``controller.cluster``). The
        store's claim decides which of them runs it."""
        key = record.task
        log.warning(
            "slot not started: its claim could not be checked",
            extra={"fields": {"task": key, "run": record.id, "reason": STORE_UNAVAILABLE}},
        )
        self.unstarted.add(key)
        if self.handover is not None:  # its claim may have been taken: see Handover.held
            self.handover.unanswered(record)
        # The ledger counts from this slot, handed over: from just before it now, so that the
        # catch-up finds it missed.
        last = self.ledger.last_slot(key)
        before = record.scheduled_at - timedelta(microseconds=1)
        if last is not None and last > before:
            self.ledger.track(key, before)
