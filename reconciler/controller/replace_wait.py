"""``Replace`` as a CronJob's: a run that replaced others starts only once their Jobs are gone.

The CronJob controller creates no Job in a round whose delete failed; here the run that
replaced others (``Dispatcher._launch``; ``RunExecution._execute`` waited for them to end)
waits before its first attempt while a Job of its task other than its own still runs
(``JobRunner.running``: a Job leaves it once its delete is answered, or once the watch sees it
end or go). A delete that failed for a while (5xx, no answer) is tried again in the background
(``runner.job_delete``): the run waits for that (still stoppable: a newer slot, shutdown),
looking again every second (the retry's pause grows to ``verify_seconds``, and the Job may end
on its own meanwhile), then starts, or is skipped ``MissedDeadline`` past
startingDeadlineSeconds, or ``ReplaceBlocked`` ``WAIT_MAX`` after it was decided (the stop of
the runs it replaces, their first delete included, counts in it: a delete not answered is given
up after ``sources.job_calls.DELETE_TIMEOUT``). A delete refused for good (403: no right
to delete Jobs, a webhook that denies it) leaves the Job running: the slot is skipped
(``ReplaceBlocked``) rather than run beside it, and the next slot adopts the Job, stops it
again (a new delete) and is decided the same way. The skip's message names the Job, also
with replicas, where the run's claim was sent as it was decided and the skip is written over
it (``_abandon``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Final

from reconciler.controller.active import ActiveRun
from reconciler.controller.execution import RunExecution
from reconciler.controller.lane import ANSWER_WAIT
from reconciler.controller.late_starts import MISSED_DEADLINE, missed_deadline
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, Trigger
from reconciler.runner.job_delete import deletes_tried

# The skip of a ``Replace`` slot whose replaced run's Job could not be deleted.
REPLACE_BLOCKED: Final = "ReplaceBlocked"
# How long a run waits, from its decision, for a delete tried again in the background before
# its slot is skipped (the delete goes on being tried). The replicas' claim gives a replaced
# run as long to stop (``Handover.patience``); the retries' pause reaches its longest
# (``verify_seconds``, 30 s) within it, so a brief outage (an API server or a webhook
# restarting) is ridden out, while a run of a manual-only or yearly task does not wait,
# unrecorded, until the Job ends.
WAIT_MAX: Final = 60.0
# How often the waiting run looks whether the Jobs it replaces still run: the background retry
# may sleep up to ``verify_seconds`` while the watch has seen the Job end.
LOOK_EVERY: Final = 1.0


def replaced_stop_bound(kill_grace: float) -> float:
    """What the stop of the runs a ``Replace`` slot replaces may take (``ReplaceWaits``): their
    kill grace, their end record's answer, a look."""
    return kill_grace + ANSWER_WAIT + LOOK_EVERY


class ReplaceWaits(RunExecution):
    """The ``Replace`` wait of :class:`~reconciler.controller.dispatch.Dispatcher` (which
    holds the state declared here)."""

    # The runs that replace others, until their first attempt may start: the runs they replace
    # stopped, and their Jobs gone (or the wait given up). ``Dispatcher.replacing`` reads it.
    _replacing: set[str]
    # The most of a replacing run's wait for the runs it stopped that its startingDeadlineSeconds
    # does not count (``_waited``): what their stop may take (``replaced_stop_bound``, set with
    # the runner's kill grace: ``wiring.dispatcher``). Past it, the wait was something else
    # (crontask frozen, the machine suspended) and counts: a slot is not started a quarter of
    # an hour late because a process was away while its old run died.
    replaced_stop: float = replaced_stop_bound(10.0)  # crontask run's default --kill-grace

    async def _run_attempt(
        self, definition: Definition | None, active: ActiveRun, *, adopted: bool = False
    ) -> RunRecord | None:
        """As ``RunExecution._run_attempt``; a run that replaced others waits for their Jobs
        to be gone first (see the module docstring)."""
        record = active.record
        if adopted or record.id not in self._replacing:
            return await super()._run_attempt(definition, active, adopted=adopted)
        if (decided := record.started_at) is not None:  # until it begins, its decision
            # The runs it replaces have ended (``_execute`` waited for them, up to their kill
            # grace): crontask's own wait, which its startingDeadlineSeconds does not count
            # (``_waited``), on the clock that deadline is on. A delete tried again is the API
            # server's refusal, and counts, as for a CronJob (``_replaced_gone``).
            # Kept until the run ends (``Dispatcher._launch``).
            waited = (self.clock() - decided).total_seconds()
            self._replace_waited[record.id] = min(max(waited, 0.0), self.replaced_stop)
        try:
            reason, why = await self._replaced_gone(definition, active)
        finally:  # only now: until the Jobs are gone it still waits (a run-now: "pending")
            self._replacing.discard(record.id)
        if why is not None and active.stop_reason is None:
            if active.claim is None:  # nothing of it was claimed yet
                # Skipped now, not when it was decided (up to ``WAIT_MAX`` earlier, maybe
                # before the run it replaced ended): the skip's time is its record's start.
                self._skip(replace(record, started_at=self.clock()), reason, why)
                return None
            # With replicas its claim was sent as it was decided: it is answered first, and
            # the run then recorded as one that did not start (``_abandon``), saying why.
            active.stop(reason, why)
        return await super()._run_attempt(definition, active, adopted=adopted)

    async def _replaced_gone(
        self, definition: Definition | None, active: ActiveRun
    ) -> tuple[str, str | None]:
        """Wait while a Job of the task other than ``active``'s own still runs and its delete
        is tried again in the background, up to ``WAIT_MAX`` or the task's starting deadline,
        whichever comes first, both counted from before the wait (the slot, the decision).
        Then the reason and why ``active`` may not start (None: it may, or it was stopped
        meanwhile)."""
        record, waited = active.record, False
        # Its wait for the runs it stopped, not counted (``_run_attempt``): only the delete's.
        credit = self._replace_waited.get(record.id, 0.0)
        deadline = None if definition is None else definition.task.spec.starting_deadline_seconds
        if record.trigger is Trigger.MANUAL:  # a run asked for by hand has no deadline
            deadline = None
        loop = asyncio.get_running_loop()
        # From the decision, when the runs it replaces were stopped: not from the end of their
        # stop, which waits for their first delete (each a read timeout when not answered).
        decided = loop.time() if active.decided_at is None else active.decided_at
        until = decided + WAIT_MAX
        while self.resumable is not None and active.stop_reason is None:
            standing = [r for r in self.resumable.running(record.task) if r.id != record.id]
            if not standing:
                break
            names = ", ".join(sorted(r.job.name if r.job else r.id for r in standing))
            if not (deleting := deletes_tried(r.job.uid for r in standing if r.job)):
                # Refused for good, or answered while a finalizer holds the Job, its pods
                # running (``JobWatch.live``): no retry to wait for either way.
                why = "its delete was refused, or a finalizer holds it (Terminating)"
                return REPLACE_BLOCKED, _blocked(names, why)
            late = (self.clock() - record.scheduled_at).total_seconds()
            # Still waiting at the deadline, it cannot start by it: skipped then, naming the
            # Job, rather than waiting on until ``WAIT_MAX`` or a newer slot replaces it.
            if deadline is not None and late - credit >= deadline:
                return MISSED_DEADLINE, (
                    f"{missed_deadline(late, deadline, credit)}: "
                    + _blocked(names, "its delete has not gone through (tried again)")
                )
            if (left := until - loop.time()) <= 0:
                return REPLACE_BLOCKED, _blocked(
                    names, f"its delete did not go through in {WAIT_MAX:g}s (tried again)"
                )
            if deadline is not None:
                left = min(left, deadline - (late - credit))
            stopped, waited = asyncio.ensure_future(active.wait_stopped(None)), True
            try:
                await asyncio.wait(
                    {stopped, *deleting},
                    timeout=min(LOOK_EVERY, left),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopped.cancel()
        late = (self.clock() - record.scheduled_at).total_seconds()
        if waited and deadline is not None and late - credit > deadline:  # ``_refused_at_once``
            return MISSED_DEADLINE, (
                f"{missed_deadline(late, deadline, credit)} (a Job it replaces was being deleted)"
            )
        return REPLACE_BLOCKED, None

    async def _abandon(self, attempt: RunRecord, reason: str, why: str | None = None) -> None:
        """As ``RunExecution._abandon``; a run stopped with its own account of why
        (``ActiveRun.stop_why``: a ``Replace`` run skipped after its claim was sent) says it,
        not what its reason says in general."""
        active = self._active.get(attempt.task, {}).get(attempt.id)
        if why is None and active is not None and active.stop_reason == reason:
            why = active.stop_why
        await super()._abandon(attempt, reason, why)


def _blocked(names: str, what: str) -> str:
    """The message of a ``ReplaceBlocked`` skip: the Jobs that still run, and why."""
    return (
        f"the Job of the run it replaces still runs ({names}): {what}; policy Replace starts "
        "no run beside it (the next slot deletes it again)"
    )
