"""What the notifier reads of a task's past in the run store (``history``), and how it judges it.

``notify`` keeps, for each task, the state its receivers were told (:class:`TaskState`). It
reads that state back from the task's previous runs the first time it looks at one of the
task's runs (after a restart, or after the task came back to this replica):
:func:`remembered`, failing since the first of the failures the history ends with, each run
judged by its newest attempt, runs the shutdown cut short left out (:func:`shut_down`), and
not failing as far as the receivers know if no notifier can have told of any of those
failures: runs a crash cut short that nobody was handed, and failures whose retry was lost
with the process (``_retry_lost``). A history that ends with successes after failures that
were told, and one success after them, is a recovery whose ``recovered`` may not have left
the queue (``recovery``). With
replicas, it also reads there whether a Job run started here was taken over by the task's new
owner (:func:`adopted`), which then tells of it.

Each read runs in a thread (the store is blocking) on the notifier's component, never on the
event loop's O(1) calls.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from reconciler.aio import in_thread
from reconciler.core.runs import JOB_DELETED, RunRecord, RunStatus, Trigger, died, untold
from reconciler.core.status import FAILURES, SHUTDOWN_REASON

log = logging.getLogger("crontask.notify")

# A task's runs, newest first, at least as far back as ``Reading`` needs (its newest too).
History = Callable[[str], Sequence[RunRecord]]


@dataclasses.dataclass
class TaskState:
    failing: bool  # as the receivers were told (or, read back, may have been)
    # When it started failing; when not failing, None, or the start of failures no message
    # told of (read back: see ``remembered``).
    since: datetime | None
    last_sent: dict[int, datetime] = dataclasses.field(default_factory=dict)  # by route
    # Read back from the run store: whether the last message ("failed" if failing, else
    # "recovered", see ``recovery``) was delivered is unknown.
    unsure: bool = False
    newest: datetime | None = None  # the slot of the newest run looked at here
    # Read back as recovered from failures that were told: when they began. Its "recovered"
    # may have been queued, or retried, when the process that queued it stopped. Or (with
    # ``owed``) recovered here, its "recovered" not delivered to some receivers.
    recovery: datetime | None = None
    changes: int = 0  # how many times it changed here: which state a message told of
    # The receivers a message about this state (its "failed", or its "recovered") did not
    # reach: given up, or pushed out of a full queue (``notify.Notifier._unsent``).
    owed: set[str] = dataclasses.field(default_factory=set)
    # The receivers it was sent again to (``owed`` once): never owed again, whatever becomes
    # of that copy. One that takes a message in but answers 5xx, or too late, would otherwise
    # get a copy with every run for as long as the state lasts.
    resent: set[str] = dataclasses.field(default_factory=set)


async def adopted(history: History | None, record: RunRecord) -> bool:
    """Whether the Job run of ``record``, started here, was taken over by the replica its
    task moved to (``controller.jobs.adopt_runs`` follows the Job there too, and that
    replica's dispatcher records the same end): the run store names the new owner. A run
    not found among the task's recent runs is taken as adopted: its task has run elsewhere
    since."""
    if history is None:
        return False  # no run store: no replicas
    runs = await in_thread(history, record.task)
    for stored in runs:
        if stored.id == record.id and stored.attempt == record.attempt:
            return stored.owner != record.owner
    return True


async def remembered(
    history: History | None,
    record: RunRecord,
    *,
    limit: Callable[[str], int],
    crashes_told: bool,
) -> TaskState:
    """The task's state before ``record``, from its previous runs in the store: failing
    since the first of the failures that end the history read (as far as that goes); not
    failing, as far as the receivers know, if no notifier can have told of any of them
    (each a run whose process died during it), but failing since the first of them. Ended
    by one success after failures one of which was told: recovered, its ``recovered`` perhaps
    never delivered (``recovery``: since the first of those failures), as a failing state's
    ``failed`` may not have been (``unsure``); a success after failures nobody told of is a
    plain ok. ``limit``: a task's retry limit in force, asked once the runs are read (a pass
    may have come meanwhile); ``crashes_told``: the notifier's (see ``crashed``)."""
    if history is None:
        return TaskState(False, None)
    try:
        runs = await in_thread(history, record.task)
    except Exception as err:
        log.warning(
            "notifications: cannot read the task's previous run; taking it as ok",
            extra={"fields": {"task": record.task, "error": str(err)[:200]}},
        )
        return TaskState(False, None)
    since: datetime | None = None
    failing = told = False
    successes = 0  # those the history ends with, after the failures (if any)
    judged: set[str] = {record.id}
    cut: set[str] = set()  # runs whose retry the shutdown cut
    retry_limit = limit(record.task)
    for previous in runs:
        # Each run by its newest attempt (newest first): an earlier attempt was retried.
        if previous.id in judged or previous.scheduled_at > record.scheduled_at:
            continue  # judged, or a later run already stored when the history was read
        if shut_down(previous):
            # Counts for nothing, as in the notifier's _consider: the run is judged by the
            # attempt before it, if any (a failure whose retry the shutdown abandoned or cut
            # short, which was notified then).
            cut.add(previous.id)
            continue
        judged.add(previous.id)
        verdict = _failed(previous)
        if verdict is None:
            continue
        if not verdict:
            if failing:
                break  # the success before the failures: they are all there is to judge
            successes += 1  # the history ends with it: are there failures before?
            continue
        failing, since = True, previous.finished_at or since
        lost = previous.id not in cut and _retry_lost(previous, retry_limit)
        # Handed to ``crashed``, unless the crontask that found it did not declare its
        # task (``controller.heartbeat``: it says so in the record).
        unheard = died(previous) and (not crashes_told or untold(previous))
        told = told or not (unheard or lost)
    if not failing:
        return TaskState(False, None)
    if not told:
        # Never announced as failing: a success since ends it (no recovery to tell of);
        # without one, a next failure is failing since the first of them.
        return TaskState(False, None if successes else since)
    if successes == 1:
        # The newest run recovered: its "recovered" was queued, but perhaps never delivered
        # (as for "failed" below). Once a later run succeeded too, that process ran on after
        # it: a restart does not tell every recovery of the history read again.
        return TaskState(False, None, unsure=True, recovery=since)
    if successes:
        return TaskState(False, None)
    return TaskState(True, since, unsure=True)


# The records ``remembered`` judges a run by: all but slots skipped (a retry skipped is an
# abandoned one: its run failed), as (status, trigger or any) filters of ``RunStore.query``.
JUDGED: Final = (
    *((status, None) for status in RunStatus if status is not RunStatus.SKIPPED),
    (RunStatus.SKIPPED, Trigger.RETRY),
)


class Reading:
    """Whether a task's runs read so far, fed newest first, hold all that :func:`remembered`
    judges: its walk ends at the success before the failures the history ends with, or at
    the second success the history ends with (whatever is older, the task is then ok as far
    as the receivers know), and the runs it passes over (a run still going, a slot skipped,
    a run the shutdown cut short) say nothing. However many of those a hung run left, the
    history is read past them (``controller.wiring``): read five pages at most, they hid a
    failure that was told, and its recovery went untold.

    One run more than the walk needs: ``remembered`` leaves out the run it is asked about,
    which may or may not be among those read (the newest, or not stored yet), so the ends
    are taken as if any one run were left out."""

    def __init__(self) -> None:
        self._judged: set[str] = set()
        self._failing = False
        self._successes = 0  # all those judged
        self._after_failure = 0  # those older than a failure
        self.done = False

    def add(self, run: RunRecord) -> bool:
        """Take the next-newest run; whether what was read is now enough."""
        if self.done or run.id in self._judged or shut_down(run):
            return self.done  # an older attempt of a run judged, or nothing (as below)
        self._judged.add(run.id)
        verdict = _failed(run)
        if verdict:
            self._failing = True
        elif verdict is not None:
            self._successes += 1
            if self._failing:
                self._after_failure += 1
        self.done = self._successes >= 3 or self._after_failure >= 2
        return self.done


def _failed(run: RunRecord) -> bool | None:
    """How ``run``'s newest attempt says the run ended: failed (an abandoned retry too: its
    run ended with the failure before it), succeeded, or ``None``, not at all (still going,
    or a slot skipped)."""
    abandoned = run.status is RunStatus.SKIPPED and run.trigger is Trigger.RETRY
    if run.status is RunStatus.RUNNING or (run.status is RunStatus.SKIPPED and not abandoned):
        return None
    return abandoned or run.status in FAILURES


def shut_down(record: RunRecord) -> bool:
    """Whether ``record``'s run was interrupted by crontask's own shutdown (counts for
    nothing: it says nothing about the task)."""
    return record.status is RunStatus.INTERRUPTED and record.reason == SHUTDOWN_REASON


def _retry_lost(record: RunRecord, limit: int) -> bool:
    """Whether ``record``, the newest attempt of its run, failed with a retry to follow that
    never came: crontask died while the retry waited (nothing of a waiting retry is stored), so
    the failure was handed on as retried and no notifier told of it. Judged by the retry limit
    in force now, the only one left to read. Not an attempt no retry follows whatever the
    limit: one replaced, or whose Job went before its end was seen."""
    retried = record.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
    return retried and record.reason not in ("Replaced", JOB_DELETED) and record.attempt <= limit
