"""The per-task run state behind the metrics: which attempts of each task are in progress and
since when, how many ended by final status, the last success, failure and duration.

It is kept up to date from two sides. The dispatcher's run and progress listeners, on the event
loop, report what happens here (:meth:`RunState.started`, :meth:`RunState.finished`). Scrapes,
in the API's worker threads, start the reads of what the run history (``History``) knows of the
tasks new to the scheduler's snapshot, and its checks (:meth:`RunState.seed`), each in a thread
of its own:

- a task that comes into the snapshot (at start-up, or from another replica) starts from its
  last success and failure in the history, read once for all the tasks that came, so that an
  alert on those timestamps does not go quiet because crontask restarted; but for a failed
  attempt this process heard retried (the history holds it as a plain failure), which is no
  failure of the task while its retry may come, as heard live (:meth:`RunState.finished`);
- the runs of those tasks that the history says are in progress elsewhere (another replica
  still running the run of a task that moved here, an earlier crontask's) are counted as
  running, and checked against the history again until they end there or are heard of here;
  then their attempts that ended are counted (:meth:`RunState.seed` says why here);
- the attempts of those tasks that ended where no process exporting them heard it (after a
  move, or cut short by a crontask's death) are counted at the next scrape: the task's
  counters show 0 first, so that ``increase()`` sees the 1.
  ``metrics_elsewhere`` reads those ends, and checks the runs in progress elsewhere.
  This process's own runs are never read from the history: they are heard. An attempt is
  counted once here (``_ended``), heard or read.

Neither read runs in a scrape's thread: a store that is down makes a read wait for its connect
timeout (10 s with PostgreSQL, as long as Prometheus' default scrape timeout), and a hung one
longer. The read of the tasks new to the snapshot (the seed) runs one at a time; a scrape waits
for it :data:`SEED_WAIT_SECONDS` at most, then serves what is known, and the next scrape shows
the rest. The check runs at most once per :data:`RECHECK_SECONDS`, one at a time, and no scrape
waits for it. Their results are applied under the lock when they come.

A scrape also forgets the state of the tasks gone from its snapshot (:meth:`RunState.prune`).

Everything sits behind one lock that the owner (``metrics.Metrics``) shares for its other
values, so that a scrape copies them all at one instant and a record's run state and the
histograms it feeds change together. Methods documented "under the lock" expect the caller to
hold it; the others take it themselves, for a few dictionary operations at a time (history
reads happen outside it, and outside ``_seeding``, which only guards which tasks were read).
Every value in ``runs`` is replaced whole, never changed, so a copy of the mapping is a
consistent view.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final

from reconciler.core.runs import LastOutcomes, RetriedAttempt, RunRecord, RunStatus
from reconciler.core.status import SHUTDOWN_REASON, is_failure
from reconciler.sinks.metrics_elsewhere import RECHECK_SECONDS, Ended, History, UnheardEnds
from reconciler.sinks.metrics_exposition import no_runs, task_runs
from reconciler.sinks.metrics_families import FINAL_STATUSES, TaskRuns, TaskSlot

log = logging.getLogger("crontask.metrics")

_INDEX: Final = {status: i for i, status in enumerate(FINAL_STATUSES)}
_SEED_BATCH: Final = 256  # tasks given their last outcomes per hold of the lock (about 1 ms)
_ENDED_KEPT: Final = 1024  # attempts whose end was heard here, kept against stale history reads
_RETRIED_KEPT: Final = 10_000  # failed attempts whose retry is awaited (the notifier keeps as many)
# How long scrapes wait for a seed (the read of the last outcomes of the tasks new to them):
# enough for a store that answers (10 000 tasks from SQLite: 0.35 s), so that the first scrape
# after a start or a handover shows them; little against Prometheus' scrape timeout (10 s by
# default) when the store hangs. A seed whose read failed after that long (a store that is
# down) is not waited for again until one succeeds.
SEED_WAIT_SECONDS: Final = 1.0


def in_thread(work: Callable[[], None]) -> None:
    """Run ``work`` in a daemon thread of its own: a read in progress never holds up a stop."""
    threading.Thread(target=work, name="crontask-metrics-history", daemon=True).start()


@dataclasses.dataclass(slots=True)
class _Seed:
    """A seed in flight: the tasks it reads, less those a scrape has seen leave the snapshot
    since (under ``_seeding``); set ``done`` when it ends; scrapes wait for it until
    ``deadline`` (``time.monotonic``)."""

    keys: set[str]
    deadline: float
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class RunState:
    """Each task's :class:`TaskRuns`, as heard from the dispatcher and read from the history.

    ``lock`` is the owner's: it guards everything here. ``started`` and ``finished`` run on the
    event loop, ``seed`` and ``prune`` in a scrape's thread, any number at a time.
    ``seed_spawn`` starts the read of the tasks new to the snapshot (``in_thread``; tests pass
    one they can wait for). ``unheard`` (with ``history``) reads the ends no process exporting
    a task heard and checks the runs in progress elsewhere (``metrics_elsewhere``).
    """

    def __init__(
        self,
        lock: threading.Lock,
        *,
        history: History | None = None,
        owner: str | None = None,
        unheard: UnheardEnds | None = None,
        per_task_histograms: bool = False,
        seed_spawn: Callable[[Callable[[], None]], None] = in_thread,
    ) -> None:
        self._lock = lock
        self._seed_spawn = seed_spawn
        self._history = history
        # This process's instance: its own runs are heard from its dispatcher, never read from
        # the history (a slot claimed ahead is recorded running before its work starts).
        self._owner = owner
        self._per_task_histograms = per_task_histograms
        # The keys of the snapshot that were looked up in the history; a key that leaves it
        # is forgotten, so that it is looked up again when it comes back. The seed in flight
        # (None: none), and whether scrapes wait for the next (not after a read that failed
        # slowly). Scrapes and the seed's thread touch them under _seeding, held for set
        # operations only: the loop never waits for a lookup, nor a scrape for a read.
        self._seeded: set[str] = set()
        self._seed: _Seed | None = None
        self._patient = True
        self._seeding = threading.Lock()
        self._seq = 0  # counts run-state updates (see prune)
        self._runs: dict[str, TaskRuns] = {}
        # Runs counted from the history, in progress elsewhere: run id -> (task, the attempt
        # seen first). One leaves when it is heard of here (adopted: its end will be heard
        # too) or ends in the history (its attempts from that one on are counted then).
        self._foreign: dict[str, tuple[str, int]] = {}
        # The attempts whose end was heard or counted here, newest last: a history read from
        # before that end was written (a store that is down keeps ends for later) does not
        # bring them back, nor does a read of the history count them again.
        self._ended: OrderedDict[tuple[str, int], None] = OrderedDict()
        # Ends read with a seed, counted at the next scrape (see the module docstring).
        self._pending: list[RunRecord] = []
        # The ends that no process exporting their task heard, read with the seeds, and the
        # checks of the runs in progress elsewhere; given with the history.
        self._unheard = unheard
        # Failed attempts that the dispatcher retries, by run: when each ended. Their run has
        # not ended, so they are not the task's last failure (the alert on it would fire while
        # the run only waits for its retry); if the retry is abandoned (skipped: Replaced,
        # TaskChanged, ...) or cut short by the shutdown, the run ended with that failure.
        self._retried: dict[str, float] = {}
        # The ends of those attempts (task, when), newest last, kept after their run ended:
        # the history holds them as plain failed attempts (the store keeps nothing of the
        # decision), so a read of it does not make one the task's last failure (see
        # _outcomes). One whose retry never came counts, and leaves.
        self._retried_ends: OrderedDict[tuple[str, float], None] = OrderedDict()

    @property
    def seq(self) -> int:
        """The count of updates so far, for :meth:`prune`'s ``began``. Under the lock."""
        return self._seq

    def copy(self) -> dict[str, TaskRuns]:
        """Each task's run state, as of now. Under the lock."""
        return dict(self._runs)

    # -- heard here (the event loop) --------------------------------------------------------

    def started(self, record: RunRecord) -> bool:
        """``record``'s attempt is in progress, from its ``started_at`` (counted once however
        often it is heard). False, and nothing changes, for a record that arrived after its
        attempt's end. Under the lock."""
        since = _since(record)
        if (record.id, record.attempt) in self._ended:
            return False  # a record that arrived after its attempt's end
        self._foreign.pop(record.id, None)  # heard here now: its end will be too
        runs = self._runs.get(record.task) or no_runs(self._per_task_histograms)
        self._set_running(record.task, runs, {**runs.running, record.id: since})
        return True

    def finished(self, record: RunRecord, seconds: float | None, counted: bool = True) -> None:
        """``record``'s attempt ended (or its slot was skipped) after ``seconds`` (None: it
        never started, or its end is not known). The last failure is that of a run that ended
        failed: a failed attempt that is retried (a :class:`RetriedAttempt`) counts only if its
        retry never ends the run (abandoned, or cut short by the shutdown), as the notifications
        judge it. Not ``counted``: an end another process counts, which ends the attempt here
        but adds to no count. Under the lock."""
        at = (record.finished_at or record.started_at or record.scheduled_at).timestamp()
        failed_before = self._retried.pop(record.id, None)
        self._remember(record)
        self._foreign.pop(record.id, None)
        runs = self._runs.get(record.task) or no_runs(self._per_task_histograms)
        counts = list(runs.counts)
        if counted:
            counts[_INDEX[record.status]] += 1
        last_success, last_failure = runs.last_success, runs.last_failure
        if isinstance(record, RetriedAttempt):
            self._retry_awaited(record.id, record.task, at)
            if last_failure == at:
                # Read from the history between its record's write and now (the store is
                # written first): not a failure of the task. What was before it is not known
                # here: absent rather than wrong, until the run ends.
                last_failure = None
        elif record.status is RunStatus.SUCCEEDED:
            last_success = max(at, last_success or at)
        elif is_failure(record):
            last_failure = max(at, last_failure or at)
        elif failed_before is not None and _abandoned(record):
            last_failure = max(failed_before, last_failure or failed_before)
            self._retried_ends.pop((record.task, failed_before), None)
        last_duration, durations = runs.last_duration, runs.durations
        if seconds is not None:
            last_duration = seconds
            if durations is not None:
                durations = durations.observe(seconds)
        self._seq += 1
        self._runs[record.task] = task_runs(
            record.task,
            tuple(counts),
            _without(runs.running, record.id),
            last_success,
            last_failure,
            last_duration,
            durations,
            self._seq,
        )

    def _remember(self, record: RunRecord) -> bool:
        """Note that ``record``'s end is counted here; False if it was already. Under the
        lock."""
        key = (record.id, record.attempt)
        if key in self._ended:
            return False
        self._ended[key] = None
        if len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)
        return True

    def _count(self, record: RunRecord) -> None:
        """Count the end of ``record``, read from the history (its task's timestamps and
        duration come from ``_outcomes``). Under the lock."""
        runs = self._runs.get(record.task) or no_runs(self._per_task_histograms)
        counts = list(runs.counts)
        counts[_INDEX[record.status]] += 1
        self._seq += 1
        self._runs[record.task] = task_runs(
            record.task,
            tuple(counts),
            runs.running,
            runs.last_success,
            runs.last_failure,
            runs.last_duration,
            runs.durations,
            self._seq,
        )

    def _retry_awaited(self, run: str, task: str, at: float) -> None:
        """``run``'s attempt that ended at ``at`` is retried. Under the lock."""
        self._retried[run] = at
        if len(self._retried) > _RETRIED_KEPT:
            del self._retried[next(iter(self._retried))]
        self._retried_ends[(task, at)] = None
        if len(self._retried_ends) > _RETRIED_KEPT:
            self._retried_ends.popitem(last=False)

    def _set_running(self, key: str, runs: TaskRuns, running: Mapping[str, float]) -> None:
        """``runs`` with its attempts in progress replaced by ``running``. Under the lock."""
        self._seq += 1
        self._runs[key] = task_runs(
            key,
            runs.counts,
            running,
            runs.last_success,
            runs.last_failure,
            runs.last_duration,
            runs.durations,
            self._seq,
        )

    # -- read from the history, forgotten (a scrape's thread) -------------------------------

    def seed(self, tasks: Mapping[str, TaskSlot]) -> None:
        """Start a check of the runs in progress elsewhere against the history when one is
        due (``UnheardEnds.recheck``, not waited for), and a read of the last success, last
        failure, last duration and runs in progress elsewhere of the tasks new to the snapshot
        when there are some and none is in flight (``_read``); wait for that one
        :data:`SEED_WAIT_SECONDS` at most from its start.

        The scrape then serves the tasks not read yet as tasks with no history: their
        counters from 0 as for any task (they count this process's attempts, which no read
        changes: shown now, a run heard meanwhile shows as 0 then 1, and ``increase()`` sees
        it, which a task left out until read would lose), their timestamps and last duration
        absent rather than wrong, their runs elsewhere not counted yet. The next scrape after
        the read shows them. A history that cannot be read is logged and asked again at the
        next scrape.

        The ends of the attempts that no process exporting their task heard, read with a seed
        (``metrics_elsewhere.UnheardEnds.ended``), are counted now, at the scrape after it."""
        if self._history is None:
            return
        with self._lock:
            pending, self._pending = self._pending, []
            for record in pending:
                self._count(record)
        assert self._unheard is not None
        self._unheard.recheck(self._watched, self._ended_elsewhere)
        seed = self._start_seed(tasks)
        if seed is not None:
            seed.done.wait(max(seed.deadline - time.monotonic(), 0.0))

    def _start_seed(self, tasks: Mapping[str, TaskSlot]) -> _Seed | None:
        """The seed in flight, started now if ``tasks`` has keys not read yet and none is;
        None if it has none."""
        with self._seeding:
            self._seeded.intersection_update(tasks)
            if self._seed is not None:
                # What left the snapshot is not marked read when the seed ends: it is read
                # again if it comes back (this process may have forgotten its state meanwhile).
                self._seed.keys.intersection_update(tasks)
            new = tasks.keys() - self._seeded
            if not new:
                return None
            if self._seed is not None:
                return self._seed
            wait = SEED_WAIT_SECONDS if self._patient else 0.0
            seed = self._seed = _Seed(set(new), time.monotonic() + wait)
        try:
            self._seed_spawn(lambda: self._read(frozenset(new), seed))
        except BaseException:
            with self._seeding:
                self._seed = None  # none in flight: the next scrape starts one
            seed.done.set()
            raise
        return seed

    def _read(self, new: frozenset[str], seed: _Seed) -> None:
        """Read ``new``'s last outcomes and runs in progress from the history and apply them.
        In the thread ``_start_seed`` started."""
        assert self._history is not None
        assert self._unheard is not None
        read = False
        try:
            try:
                found = self._history.last_outcomes(new)
                going = [r for r in self._history.running() if r.task in new]
                ended = self._unheard.ended(new, going)
            except Exception as err:
                log.warning(
                    "metrics: cannot read the last outcomes of tasks from the run history,"
                    " nor their runs in progress",
                    extra={"fields": {"tasks": len(new), "error": str(err)[:200]}},
                )
                return
            self._outcomes(found)
            self._elsewhere(going)
            with self._lock:
                self._pending += [r for r in ended if self._remember(r)]
            read = True
        finally:
            with self._seeding:
                if read:
                    self._seeded |= seed.keys
                self._patient = read or time.monotonic() <= seed.deadline
                self._seed = None
            seed.done.set()

    def _mine(self, record: RunRecord) -> bool:
        return self._owner is not None and record.owner == self._owner

    def _outcomes(self, found: Mapping[str, LastOutcomes]) -> None:
        """Merge last outcomes read from the history: the later of both ends is kept; the
        history's duration replaces the one seen here unless an end seen here is newer.

        A failure read that is an attempt this process heard retried is left out: its run had
        not ended (it waits for its retry, or the retry ended it since), as the run listener
        judged it. The history's failure before it is not read: the task shows no failure
        from the history (absent rather than wrong) until its run ends here."""
        items = list(found.items())
        # A few hundred tasks per hold of the lock: the loop's run listener waits for it.
        for start in range(0, len(items), _SEED_BATCH):
            with self._lock:
                for key, last in items[start : start + _SEED_BATCH]:
                    runs = self._runs.get(key) or no_runs(self._per_task_histograms)
                    seen = max(runs.last_success or 0.0, runs.last_failure or 0.0)
                    stored = max(_at(last.success), _at(last.failure))
                    duration = runs.last_duration
                    if last.duration is not None and (duration is None or stored >= seen):
                        duration = last.duration
                    failure = last.failure
                    if failure is not None and (key, failure.timestamp()) in self._retried_ends:
                        failure = None
                    self._seq += 1
                    self._runs[key] = task_runs(
                        key,
                        runs.counts,
                        runs.running,
                        _later(runs.last_success, last.success),
                        _later(runs.last_failure, failure),
                        duration,
                        runs.durations,
                        self._seq,
                    )

    def _elsewhere(self, going: Iterable[RunRecord]) -> None:
        """Count the runs in progress that the history holds of tasks that came here, but
        this process's own (heard from its dispatcher) and those whose end it heard."""
        with self._lock:
            for record in going:
                if self._mine(record) or (record.id, record.attempt) in self._ended:
                    continue
                runs = self._runs.get(record.task) or no_runs(self._per_task_histograms)
                if record.id not in runs.running:
                    self._foreign[record.id] = (record.task, record.attempt)
                    self._set_running(
                        record.task, runs, {**runs.running, record.id: _since(record)}
                    )

    def _watched(self) -> dict[str, tuple[str, int]]:
        """A copy of the runs in progress elsewhere, for ``UnheardEnds.recheck``."""
        with self._lock:
            return dict(self._foreign)

    def _ended_elsewhere(self, ended: Ended, found: Mapping[str, LastOutcomes]) -> None:
        """Apply what a check of the runs in progress elsewhere found (``UnheardEnds.recheck``):
        the runs that ended there leave, their attempts that ended are counted, their tasks'
        last outcomes merged. In the check's thread."""
        with self._lock:
            for run, (key, attempts) in ended.items():
                if self._foreign.pop(run, None) is not None:  # not heard of here meanwhile
                    runs = self._runs[key]
                    self._set_running(key, runs, _without(runs.running, run))
                    for record in attempts:
                        if self._remember(record):
                            self._count(record)
        self._outcomes(found)

    def prune(self, copied: Mapping[str, TaskRuns], tasks: Collection[str], began: int) -> None:
        """Forget the run state of the tasks in ``copied`` (a scrape's copy) that the snapshot
        (``tasks``) no longer holds, and their runs in progress elsewhere. A task's attempts in
        progress here keep it (they run here, whoever holds the task now: their ends will be
        heard, and the task may come back), and so does a state updated after the snapshot was
        taken (``seq > began``, :attr:`seq` read before it: a task added since, already
        running)."""
        gone = [key for key, r in copied.items() if key not in tasks and r.seq <= began]
        if not gone:
            return
        with self._lock:
            for key in gone:
                runs = self._runs.get(key)
                if runs is None or runs.seq > began:
                    continue
                here = {run: at for run, at in runs.running.items() if run not in self._foreign}
                for run in runs.running.keys() - here.keys():
                    del self._foreign[run]
                if not here:
                    del self._runs[key]
                elif len(here) < len(runs.running):
                    self._set_running(key, runs, here)


def _without(running: Mapping[str, float], run: str) -> Mapping[str, float]:
    """``running`` less ``run`` (a new mapping: a scrape may be reading the old one)."""
    if run not in running:
        return running
    return {key: since for key, since in running.items() if key != run}


def _abandoned(record: RunRecord) -> bool:
    """Whether ``record``, the attempt after a retried one, never ended its run: skipped (the
    retry abandoned) or interrupted by crontask's own shutdown."""
    if record.status is RunStatus.INTERRUPTED:
        return record.reason == SHUTDOWN_REASON
    return record.status is RunStatus.SKIPPED


def _since(record: RunRecord) -> float:
    return (record.started_at or record.scheduled_at).timestamp()


def _at(stored: datetime | None) -> float:
    return 0.0 if stored is None else stored.timestamp()


def _later(seen: float | None, stored: datetime | None) -> float | None:
    if stored is None:
        return seen
    at = stored.timestamp()
    return at if seen is None else max(seen, at)


__all__: Sequence[str] = ["RECHECK_SECONDS", "History", "RunState"]
