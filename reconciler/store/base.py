"""The run store seam: the :class:`RunStore` Protocol, its errors, and the rules every store
shares (retention, an interrupted record, a lapsed heartbeat).

Every implementation (``memory.py``, ``sql.py``) passes the same contract suite
(``tests/store/test_store_contract.py``); the docstrings here are that contract in prose. The
query types the Protocol takes and returns (:class:`RunQuery`, :class:`RunPage`, and the cursor
that links pages) are in ``query.py``, and how every store keeps a record (UTC datetimes,
storable text) in ``records.py``.

Rules that hold for every method:

- Datetimes going in must be timezone-aware (``ValueError`` otherwise); datetimes coming out are
  timezone-aware and in UTC, whatever zone they went in with.
- ``(id, attempt)`` is the identity of a record. A *run* is all the attempts sharing an ``id``;
  they share ``task`` and ``scheduled_at`` because the id is derived from them
  (:func:`reconciler.core.runs.run_id`).
- "Newest first" always means ``scheduled_at`` descending, then ``id`` descending, then
  ``attempt`` descending: a total order, so pagination is stable.
- :class:`StoreUnavailable` means "try again later" (the database could not be reached or stayed
  locked); any other exception is a bug or a contract violation and should not be retried.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal, Protocol, runtime_checkable

from reconciler.core.runs import PROCESS_DIED, LastOutcomes, RunRecord, RunStatus, Trigger
from reconciler.core.status import SHUTDOWN_REASON
from reconciler.store.exclusive import ExclusiveClaim as ExclusiveClaim
from reconciler.store.exclusive import decide_exclusive as decide_exclusive
from reconciler.store.query import RunPage as RunPage
from reconciler.store.query import RunQuery as RunQuery
from reconciler.store.records import utc

__all__ = [
    "FAILED_STATUSES",
    "INTERRUPTED_MESSAGE",
    "UNTOLD_MAX",
    "DuplicateRun",
    "ExclusiveClaim",
    "IncompatibleSchema",
    "RetentionClass",
    "RetentionTally",
    "RunPage",
    "RunQuery",
    "RunStore",
    "StoreUnavailable",
    "decide_exclusive",
    "interrupted",
    "retention_class",
    "slot_run",
    "tells",
]

UNTOLD_MAX: Final = 1000  # what one read of the runs nobody told of gives at most
# What is known of every such attempt, whoever found it (a start-up, a heartbeat, a replica):
# its crontask was found gone, not how (dead, or a replica only paused or cut off).
INTERRUPTED_MESSAGE: Final = (
    "the crontask that ran this attempt ({owner}) was found gone before the attempt finished; "
    "its outcome is unknown"
)

FAILED_STATUSES: Final = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED})
"""The statuses ``failedRunsHistoryLimit`` keeps (as Kubernetes CronJob does for failed Jobs)."""


class DuplicateRun(Exception):
    """``(id, attempt)`` already exists. This is how a slot is kept from running twice: whoever
    claims first runs it, everybody else (other threads, processes, replicas) gets this."""

    def __init__(self, run_id: str, attempt: int) -> None:
        super().__init__(f"run {run_id!r} attempt {attempt} is already claimed")
        self.run_id = run_id
        self.attempt = attempt


class StoreUnavailable(Exception):
    """Temporary: the database could not be reached, or stayed locked past the busy timeout.
    The operation did not happen (or its outcome is unknown for a lost commit) - retry later."""


class StoreClosed(RuntimeError):
    """The store's calls are closed to this process: it is stopping (``Recorder.close``)."""


class IncompatibleSchema(Exception):
    """The database was migrated by a newer crontask (its schema revision is unknown here).
    Refusing to touch it is safer than guessing; upgrade crontask or point it at another DB."""


RetentionClass = Literal["succeeded", "failed", "skipped"]


def retention_class(status: RunStatus) -> RetentionClass | None:
    """Which history limit keeps a finished run whose latest attempt ended with ``status``.

    Skipped runs (a slot not started, e.g. ``concurrencyPolicy: Forbid``) are kept by the failed
    limit but counted in a bucket of their own: a burst of skips while a long run holds the slot
    must not push the evidence of real failures out of the history, and a skip is not a success.
    ``None`` for ``running``: running runs are neither counted nor deleted.
    """
    if status is RunStatus.SUCCEEDED:
        return "succeeded"
    if status in FAILED_STATUSES:
        return "failed"
    if status is RunStatus.SKIPPED:
        return "skipped"
    return None


def slot_run(attempts: Iterable[tuple[int, str]]) -> bool:
    """Whether a run is a run of a slot of the schedule, from the ``(attempt, trigger)`` of its
    attempts: one whose first attempt is there and is not manual. A run's kind is its first
    attempt's trigger (a manual run's retries record ``retry``). A ``retry`` alone tells
    nothing: its first attempt was deleted (by an older crontask's retention, while the run
    waited for its retry), and taken for a slot, a manual run's moment would hide the slots
    missed before it (``RunStore.last_slots``)."""
    return any(attempt == 1 and trigger != Trigger.MANUAL for attempt, trigger in attempts)


def tells(attempts: Iterable[tuple[RunStatus, str | None]]) -> bool:
    """Whether a run says how its task did, from the ``(status, reason)`` of its attempts: one
    of them succeeded, or failed as ``core.status.is_failure`` counts it (failed, timed out,
    interrupted but not by crontask's own shutdown). A skip, a run still going, or one only
    cut short by a shutdown says nothing: the status page, the notifier and the metrics then
    read the run before it."""
    return any(
        status is RunStatus.SUCCEEDED
        or (status in FAILED_STATUSES and not _shut_down(status, reason))
        for status, reason in attempts
    )


def _shut_down(status: RunStatus, reason: str | None) -> bool:
    return status is RunStatus.INTERRUPTED and reason == SHUTDOWN_REASON


def last_success_order(record: RunRecord) -> tuple[datetime, datetime, str] | None:
    """Where an attempt stands among its task's successes, the last success greatest: by its
    end (as ``RunStore.last_outcomes`` exports it), then its run's slot and id (one run of
    two that ended at the same instant); None for one that did not succeed, or whose end is
    not recorded (``last_outcomes`` exports no such end)."""
    if record.status is not RunStatus.SUCCEEDED or record.finished_at is None:
        return None
    return (record.finished_at, record.scheduled_at, record.id)


class RetentionTally:
    """Walks one task's runs newest first and says which to keep (shared by every store so the
    retention rules cannot drift between them).

    The task's newest run of a slot (:func:`slot_run`) is kept whatever the limits say (it
    still counts in its bucket): it is the mark from which missed slots are counted
    (``RunStore.last_slots``). Were it deleted, a restart, or a replica taking the task over,
    would count the slot it ran as missed, catch it up, and run it a second time.

    So is the task's newest run that says how it did (:func:`tells`), as a CronJob keeps
    ``status.lastSuccessfulTime`` whatever its history limits: with
    ``successfulRunsHistoryLimit: 0`` the success after a failure (a Run now that fixed it, or
    a Forbid task's long run whose slot after was skipped) was deleted and the failure kept,
    and after a restart the status page, the metrics (a last failure with no last success)
    and ``CrontaskTaskFailing`` said a healthy task was failing until its next success.

    And so is the task's last success, the run of its succeeded attempt that finished last
    (:func:`last_success_order`): with ``successfulRunsHistoryLimit: 0`` a task that kept
    failing lost it, and after a restart the metrics had no last success
    (``CrontaskTaskNoRecentSuccess`` cannot fire without one) until the task succeeded again.
    By its end, not its slot, as ``RunStore.last_outcomes`` exports it: of two overlapping
    runs (``Allow``, or a late retry) the older slot's may end last, and keeping the newer
    slot's moved the exported last success backwards after a restart. The store says which run
    it is (``last_success``); the walk is not over before it is met (unless
    :meth:`expect_success` says there is none). At most three runs a task beyond the limits."""

    def __init__(self, succeeded_limit: int, failed_limit: int) -> None:
        if succeeded_limit < 0 or failed_limit < 0:
            raise ValueError("history limits must be >= 0")
        self._left: dict[RetentionClass, int] = {
            "succeeded": succeeded_limit,
            "failed": failed_limit,
            "skipped": failed_limit,
        }
        self.anchored = False  # the newest run that is not manual has been seen
        self.told = False  # the newest run that says how the task did has been seen
        self.succeeded = False  # the last success has been seen, or the task has none

    def expect_success(self, expected: bool) -> None:
        """Whether the task has a last success to keep (``keep``'s ``last_success``)."""
        self.succeeded = self.succeeded or not expected

    def keep(
        self,
        statuses: Sequence[RunStatus],
        *,
        anchor: bool = False,
        busy: bool = False,
        tells: bool = False,
        last_success: bool = False,
    ) -> bool:
        """``statuses``: the attempts of the next-newest run, latest attempt first; ``anchor``:
        it is a run of a slot (:func:`slot_run`); ``busy``: it is not over, though none of its
        attempts runs (it waits for a retry): kept and not counted, as a running one;
        ``tells``: it says how the task did (:func:`tells`); ``last_success``: it is the task's
        last success."""
        first_anchor = anchor and not self.anchored
        self.anchored = self.anchored or anchor
        # A run still going that tells (an earlier attempt failed) is kept anyway, and is what
        # the status page reads first: the runs before it say nothing more of the task's state.
        first_told = tells and not self.told
        self.told = self.told or tells
        first_success = last_success and not self.succeeded
        self.succeeded = self.succeeded or last_success
        if busy or RunStatus.RUNNING in statuses:
            return True
        cls = retention_class(statuses[0])
        if cls is None or self._left[cls] > 0:
            if cls is not None:
                self._left[cls] -= 1
            return True
        return first_anchor or first_told or first_success

    @property
    def exhausted(self) -> bool:
        """Every bucket is full, and the mark of missed slots, the newest run that tells and
        the last success are kept: all older finished runs go."""
        return self.anchored and self.told and self.succeeded and not any(self._left.values())


def interrupted(record: RunRecord, now: datetime, note: str = "") -> RunRecord:
    """``record`` as :meth:`RunStore.mark_interrupted` leaves it."""
    return record.finish(
        RunStatus.INTERRUPTED,
        finished_at=utc(now),
        exit_code=None,
        reason=PROCESS_DIED,
        message=INTERRUPTED_MESSAGE.format(owner=record.owner) + note,
        output=record.output,
    )


@runtime_checkable
class RunStore(Protocol):
    """The history of every run, and the arbiter of who runs a slot.

    Implementations are safe to call from several threads. The SQL one is also safe across
    processes sharing one database; the memory one is process-local by nature.
    """

    def claim(self, record: RunRecord) -> None:
        """Insert a new record (usually ``status=running``).

        Raises :class:`DuplicateRun` if ``(record.id, record.attempt)`` exists. Atomic: when any
        number of threads or processes claim the same ``(id, attempt)`` concurrently, exactly one
        succeeds. ``ValueError`` if a datetime is naive or ``attempt < 1``.
        """
        ...

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        """Claim several records in one call (one transaction where the store has them):
        ``result[i]`` is True if ``records[i]`` was inserted, False if its ``(id, attempt)``
        existed already (or appears earlier in ``records``). Atomic per record as ``claim``;
        this is what lets thousands of slots due in the same second start without one store
        round trip each."""
        ...

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        """``claim_many``, unless a run of the record's task is going for someone else: a
        record is not inserted while its task has a ``running`` attempt whose owner is not
        ``record.owner`` (another replica's run), and its answer lists those attempts. This is
        how concurrencyPolicy ``Forbid`` and ``Replace`` hold across replicas: the run ids of
        two runs of a task differ, so the primary key alone cannot keep them apart.

        The look and the insert are one step, serialised per task: when threads or processes
        claim records of one task this way at once, each sees what those before it inserted,
        so of two owners' runs of a task the one claimed second is refused while the first is
        running. (``claim`` and ``claim_many`` take no part in it: a record they insert
        meanwhile may go unseen.) Within ``records``, each sees those before it as inserted
        (see :func:`decide_exclusive`)."""
        ...

    def complete(self, record: RunRecord) -> None:
        """Overwrite the mutable fields of the existing ``(record.id, record.attempt)``.

        The mutable fields are ``status``, ``started_at``, ``finished_at``, ``exit_code``,
        ``reason``, ``message``, ``output`` and ``job``; the identity fields (``task``,
        ``scheduled_at``, ``trigger``) and ``owner`` keep their claimed values. ``KeyError`` if
        the record does not exist (it was never claimed: prune never deletes running records).
        Both ``claim`` and ``complete`` replace NUL characters and lone surrogates in ``output``
        and ``message`` (see ``records.storable_text``) so that binary output cannot lose a record.
        """
        ...

    def save_many(self, records: Sequence[RunRecord]) -> list[RunRecord]:
        """Write the newest state of each record in one call (one transaction where the store
        has them): an existing ``(id, attempt)`` has its mutable fields overwritten as by
        ``complete``, a missing one is inserted whole (with replicas, one :meth:`mark_interrupted`
        ended is left as marked, and returned as it stands: ``store.keep_marks``; else ``[]``).
        A key given twice ends with its last record. This is how finished runs are written."""
        ...

    def get(self, run_id: str, attempt: int | None = None) -> RunRecord | None:
        """One attempt of a run; ``attempt=None`` means the latest (highest) attempt.
        ``None`` if there is no such record."""
        ...

    def attempts(self, run_id: str) -> list[RunRecord]:
        """Every attempt of a run, ``attempt`` ascending; ``[]`` for an unknown id."""
        ...

    def query(self, q: RunQuery) -> RunPage:
        """A page of records matching every filter in ``q``, newest first (see module docs).

        At most ``q.limit`` items. ``next_cursor`` is set iff more matching records follow;
        walking pages with it visits every matching record exactly once (absent concurrent
        deletes). Each attempt is its own item."""
        ...

    def latest(self, task: str) -> RunRecord | None:
        """The newest record of ``task`` (newest slot, highest attempt), or ``None``."""
        ...

    def latest_many(self, tasks: Collection[str]) -> dict[str, RunRecord]:
        """For each of ``tasks`` with a record, what :meth:`latest` gives, without its output
        (``output`` is empty); tasks without one are left out. What the task list of a replica
        shows of the tasks other replicas run: a few queries for any number of tasks, not one
        per task, and no output (up to 64 KiB a record, which the list does not show)."""
        ...

    def running(self, task: str | None = None) -> list[RunRecord]:
        """Every record with ``status=running`` (of ``task`` only, when given), oldest first
        (``scheduled_at``, id, attempt)."""
        ...

    def request_stop(self, run_ids: Collection[str], reason: str) -> int:
        """Ask whoever runs the running attempts of ``run_ids`` to stop them with ``reason``
        (another replica replacing them). Returns how many running attempts were marked;
        finished ones are left alone. The owner learns of it from :meth:`stop_requests`."""
        ...

    def stop_requests(
        self, owner: str, runs: Collection[tuple[str, int]] = ()
    ) -> list[tuple[str, int, str]]:
        """``(run id, attempt, reason)`` of each attempt of ``owner`` asked to stop: running, or
        one of ``runs`` (``(id, attempt)`` going on there) whatever its status (interrupted)."""
        ...

    def last_slots(self, tasks: Collection[str] | None = None) -> dict[str, datetime]:
        """For each task (each of ``tasks``; every task in the history when ``None``), the
        newest ``scheduled_at`` of its scheduled runs (every run but a manual one, by its
        first attempt's trigger: its retries record ``retry``; a manual run's times are not
        slots of the schedule), or the task's mark (:meth:`mark_tracked`) where that is later;
        tasks with neither are left out. At start-up (every task: none is read yet), the slots
        missed while crontask was down; at a change of replicas, those of the tasks the replica
        owns, each read from the end of its history (a full read of the history held up the new
        assignment: a second at a million runs). A few queries for any number of tasks, not one
        per task."""
        ...

    def mark_tracked(self, since: Mapping[str, datetime]) -> None:
        """Each task of ``since`` was added to the scheduler without catching any slot up (new,
        declared again after being removed, or without a slot in the store at a start), and its
        slots are counted from its instant there: :meth:`last_slots` answers that instant until
        a later slot is recorded. So a slot that fell while the task was not declared is not
        caught up at the next start, and the first slot of one that never ran, missed while
        crontask was down, is. One write for all of them; a later mark already there stays."""
        ...

    def last_outcomes(self, tasks: Collection[str]) -> dict[str, LastOutcomes]:
        """For each of ``tasks`` with a finished success or failure (failed, timed out,
        interrupted) in the history, the newest ``finished_at`` of each, and how long the
        attempt that ended last ran, of those that started and whose end is known (not
        ``interrupted`` because its process died); tasks with neither are left out.
        What the metrics of a task start from when it comes to this process (at start-up, or
        from another replica), so that its alerts survive the move: a few queries for any
        number of tasks, not one per task."""
        ...

    def take_over(self, run_id: str, attempt: int, owner: str) -> RunRecord | None:
        """Make ``owner`` the owner of the running attempt ``(run_id, attempt)``, and forget any
        request to stop it: an instance adopts a run whose work goes on outside any process (a
        Kubernetes Job) when the run's owner is gone or the task moved to it.

        Returns the record as it is after the call, ``None`` if there is no such record. Its
        owner changes only while it is running: a finished record is returned unchanged, which
        tells the caller that someone else recorded the end already."""
        ...

    def mark_interrupted(
        self,
        owners: Collection[str],
        now: datetime,
        *,
        keep: Collection[str] = (),
        note: str = "",
    ) -> list[RunRecord]:
        """Finish the running records claimed by ``owners`` (instances known to be dead),
        except the runs whose ids are in ``keep`` (their work outlives the process: a Job).

        Each becomes ``interrupted`` with ``finished_at=now``, ``reason="ProcessDied"``,
        ``exit_code=None``, a message naming the owner (and ending with ``note``), ``output``,
        ``started_at`` and ``job`` kept. Returns the updated records (oldest first). Records
        with no owner are never matched.
        Atomic per record: a concurrent :meth:`complete` either wins or is overwritten, and a
        record is never reported by two concurrent callers.
        """
        ...

    def untold(
        self, since: datetime, after: tuple[datetime, str, int] | None = None
    ) -> list[RunRecord]:
        """The runs marked ``interrupted`` by :meth:`mark_interrupted` with the note
        ``core.runs.UNTOLD`` (no crontask told of them) and finished at or after ``since``,
        in the order of ``(finished_at, id, attempt)``, after ``after`` (the last of the
        previous page), :data:`UNTOLD_MAX` at most."""
        ...

    def take_untold(self, run_ids: Collection[str]) -> list[RunRecord]:
        """Take the note ``UNTOLD`` off the records of ``run_ids`` that still end with it
        (their crontask tells of them now); returns those records as they now read. Atomic per
        record: of concurrent callers, one only gets each."""
        ...

    def beat(self, instance: str, lease_seconds: float, now: datetime) -> None:
        """Note that ``instance`` lives at ``now`` (its clock), and for ``lease_seconds`` after
        unless it beats again (``controller.heartbeat``)."""
        ...

    def beats(self) -> dict[str, tuple[str, float]]:
        """Each instance's last beat: a mark that changes with every beat (the time it gave,
        as text: compare it only with itself) and its lease (NaN if it is no number). Any
        client of the store may write a row: whatever it holds reads back."""
        ...

    def forget_beats(self, instances: Collection[str]) -> None:
        """Delete the beats of ``instances``: one that stops, or ones lapsed whose runs have
        all ended."""
        ...

    def prune(
        self,
        limits: Mapping[str, tuple[int, int]],
        max_age: timedelta | None,
        now: datetime,
        *,
        busy: Container[str] = (),
        declared: Collection[str] | None = None,
        owner: str | None = None,
        retrying: Collection[str] | None = (),
    ) -> int:
        """Apply retention; return how many records (rows) were deleted.

        ``limits`` maps a task key to ``(successfulRunsHistoryLimit, failedRunsHistoryLimit)``.
        For each such task the newest N succeeded runs are kept, the newest M failed runs
        (failed, timedOut, interrupted) are kept, and separately the newest M skipped runs (see
        :func:`retention_class`); older ones are deleted. A run (all its attempts) is classified by
        its latest attempt and is deleted whole. Tasks absent from ``limits`` are not
        count-limited. Whatever the limits, each task keeps its newest run of a slot (see
        below), its newest run that says how it did (:func:`tells`: what a restart reads
        its state from, see :class:`RetentionTally`) and the run of its succeeded
        attempt that finished last (its last success as :meth:`last_outcomes` exports it,
        :func:`last_success_order`); each still counts in its bucket.

        Then, if ``max_age`` is given, every run with ``scheduled_at < now - max_age`` is
        deleted, in every task, but the newest run of a slot (:func:`slot_run`; the mark of
        missed slots, :meth:`last_slots`; a ``@monthly`` task's is older than 30 days on the
        eve of its next slot) of each task in ``declared`` (the tasks declared now: a removed
        task's goes by age like any run), or of every task when ``declared`` is ``None``; on
        the same terms its newest run that tells and its last success. ``owner``: the
        instance that prunes, when crontasks that declare other tasks may share the store
        (without ``--ha``): then the mark of a task outside ``declared`` stays too while an
        attempt of its run is another instance's (that crontask may declare the task and be
        down: it counts from the mark the slots it missed when it starts); an attempt without
        an owner names nobody. ``None``: ``declared`` is every crontask's (replicas).
        ``scheduled_at`` (not ``finished_at``) because it is indexed and the same for all
        attempts, so old runs go whole.

        Never deletes a run that has a running attempt, nor a run whose id is in ``busy``: the
        caller's runs that are not over though none of their attempts runs (waiting for a
        retry: pruned, the retry would record an attempt of a run without its first). Such a
        run counts in no bucket, as a running one. ``busy`` is only asked ``in``, after the
        run's rows were read: the caller may add to it meanwhile (its runs that began since).
        Nor, by age, a run whose retry may still come, whoever's it is
        (``retry_window.retry_may_follow``): ``busy`` names only the caller's own. Of a task
        in ``retrying`` (declared with a retry limit; None: not known, any task), or recorded
        by another instance than ``owner`` (whose policy is not known here).

        Cheap: driven by the ``(task, scheduled_at)`` and ``(scheduled_at)`` indexes, never a
        full scan.
        """
        ...

    def ping(self) -> None:
        """Return if the store is reachable; raise :class:`StoreUnavailable` otherwise."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent; the store must not be used afterwards."""
        ...
