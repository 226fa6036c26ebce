"""The ends of runs that this process did not hear, which it counts all the same.

A task's series are exported by one process only (its owner, with replicas), and
``crontask_runs_total`` must count every attempt of it once, there, wherever the attempt ended.
Most ends are heard by the dispatcher of the process that exports the task
(``metrics_runs.RunState.finished``). The others are read from the run history here, by
:class:`UnheardEnds`, and counted by ``RunState``, once each (its ``_ended``):

- the runs of a task that were in progress elsewhere when it was first read here (another
  replica still running it after the task moved, an earlier crontask's): checked again now and
  then (:meth:`UnheardEnds.recheck`, at most once per :data:`RECHECK_SECONDS`, in a thread no
  scrape waits for) until the history says they ended, then their attempts that ended;
- with a task's first read here (its seed, :meth:`UnheardEnds.ended`), counted at the scrape
  after it so that the task's counters show 0 first and ``increase()`` sees the 1:

  - the runs in progress at another replica when the tasks last moved (read then,
    :meth:`UnheardEnds.moved`) that ended before this process first read their task: their
    end was heard where they ran, which no longer exports the task, and the seed, reading the
    runs in progress, no longer sees them;
  - the runs a dead crontask left, marked ``interrupted`` by whoever found it dead with the
    note that nobody told of them (a start-up after a crash without notifications, a
    survivor), since this process started or, with replicas, shortly before the tasks last
    moved (:data:`DIED_BEFORE_MOVE_SECONDS`): before that, the process that exported the task
    then counted them, or no one could;
  - the runs this process itself marked at start-up for the crontask that held its state
    directory before it (:meth:`UnheardEnds.crashed`): those it tells of (``--notifications``
    without ``--ha``) carry no such note, and those the store could not take yet are not in it.

It is apart from ``metrics_runs`` because none of it is the run state a scrape shows: only
reads of the history and what they found, which ``RunState`` applies under its lock. This
process's own runs are never read here: they are heard.

Called from the threads of the seeds, of the checks and of :meth:`UnheardEnds.moved`'s read
(the history's reads, which may wait for a store that is down), from a scrape's
(``recheck``), and from the event loop (``moved``, ``crashed``): a lock of its own guards the
few values here, held for assignments only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol

from reconciler.core.runs import LastOutcomes, RunRecord, died

log = logging.getLogger("crontask.metrics")

# Between two checks of the runs in progress elsewhere: a scrape interval (Prometheus' default
# is 15 s), so that several scrapers, or a store that is down, cost one read per interval.
RECHECK_SECONDS: Final = 15.0

# With replicas, the runs of a dead one are marked interrupted by a survivor just before its
# tasks move (``controller.sweep``), at its own renewal: those marked this long before the
# last move here are taken as brought by it. Four leases (15 s by default).
DIED_BEFORE_MOVE_SECONDS: Final = 60.0
_UNTOLD_PAGES: Final = 10  # of up to 1 000 dead runs each: what a seed reads at most
# Before the first run's end: the runs a crash left are marked at start-up before the
# metrics exist (``controller.instance.recover``), after this module was imported.
_LOADED: Final = time.time()

# The runs in progress elsewhere (run id -> (task, the attempt seen first)). What a check
# found of them: those that ended, with their attempts that ended from that one on (run id ->
# (task, attempts)), and their tasks' last outcomes.
Watched = Mapping[str, tuple[str, int]]
Ended = Mapping[str, tuple[str, list[RunRecord]]]
Apply = Callable[[Ended, Mapping[str, LastOutcomes]], None]


class History(Protocol):
    """Where a task's last outcomes and its runs in progress elsewhere come from when it comes
    into the snapshot (the run store implements it), and the ends no process exporting it
    heard: ``attempts`` a run's attempts whose end another process heard, ``untold`` the runs
    marked ``interrupted`` for a dead crontask with the note that no crontask told of them (as
    every replica marks them), finished at or after ``since``, in pages that start after
    ``after``. Called from the threads of the metrics' spawns, never from a scrape's."""

    def last_outcomes(self, tasks: Collection[str]) -> Mapping[str, LastOutcomes]: ...

    def running(self, task: str | None = None) -> Sequence[RunRecord]: ...

    def attempts(self, run_id: str) -> Sequence[RunRecord]: ...

    def untold(
        self, since: datetime, after: tuple[datetime, str, int] | None = None
    ) -> Sequence[RunRecord]: ...


class UnheardEnds:
    """The ends of the attempts no process exporting their task heard (module docstring).

    ``owner``: this process's instance, whose runs are heard, never read. ``spawn`` starts the
    read after a move and the checks of the runs in progress elsewhere, which ``clock``
    (monotonic seconds) spaces (tests pass a fake clock, and spawns they can wait for).
    ``started`` (Unix time; None: when this module was imported) is when the dead runs counted
    here may begin to have been marked."""

    def __init__(
        self,
        history: History,
        *,
        owner: str | None,
        clock: Callable[[], float],
        spawn: Callable[[Callable[[], None]], None],
        started: float | None = None,
    ) -> None:
        self._history = history
        self._owner = owner
        self._clock = clock
        self._spawn = spawn
        self._lock = threading.Lock()
        # When the last check of the runs in progress elsewhere began (None: never), and
        # whether one is in flight.
        self._rechecked: float | None = None
        self._rechecking = False
        # How many times the tasks here moved (with replicas), and the runs in progress at
        # other replicas read after the last move: run id -> (task, attempt). None: not read.
        self._moves = 0
        self._moved_runs: tuple[int, dict[str, tuple[str, int]]] | None = None
        # Dead runs marked since then count (see DIED_BEFORE_MOVE_SECONDS).
        self._died_since = _LOADED if started is None else started
        # The runs marked at this start-up (``crashed``) whose task was not read yet, by task.
        self._crashed: dict[str, dict[tuple[str, int], RunRecord]] = {}

    def mine(self, record: RunRecord) -> bool:
        """Whether ``record`` is this process's run (heard, not read)."""
        return self._owner is not None and record.owner == self._owner

    # -- the event loop ---------------------------------------------------------------------

    def moved(self, at: float) -> None:
        """With replicas: tasks moved at ``at`` (Unix time), or this replica took its first
        share. Reads the runs in progress at the others now (not waited for), so that a task
        that came here counts those that end before its seed (their end is heard where they
        ran)."""
        with self._lock:
            self._moves += 1
            move = self._moves
            self._died_since = max(self._died_since, at - DIED_BEFORE_MOVE_SECONDS)
        self._spawn(lambda: self._read_moved(move))

    def crashed(self, records: Iterable[RunRecord]) -> None:
        """The runs this process marked ``interrupted`` at start-up for a crontask found dead
        (``controller.instance.Recovery``): counted with their task's first read here, as the
        runs ``untold`` gives, which they may also be (each end counts once). Call it before
        the first scrape: a task read already does not count them."""
        with self._lock:
            for record in records:
                if died(record) and not self.mine(record):
                    of_task = self._crashed.setdefault(record.task, {})
                    of_task[(record.id, record.attempt)] = record

    def _read_moved(self, move: int) -> None:
        try:
            going = self._history.running()
        except Exception as err:
            log.warning(
                "metrics: cannot read the runs in progress from the run history after a"
                " handover; those that end before their task is read here are not counted",
                extra={"fields": {"error": str(err)[:200]}},
            )
            return
        runs = {r.id: (r.task, r.attempt) for r in going if not self.mine(r)}
        with self._lock:
            if move == self._moves:
                self._moved_runs = (move, runs)

    # -- a scrape's thread, and the thread of a check it starts ----------------------------

    def recheck(self, watched: Callable[[], Watched], apply: Apply) -> None:
        """Check the runs in progress elsewhere (``watched()``, a copy) against the history in
        a thread of its own, if there are some, none is in flight and the last began
        :data:`RECHECK_SECONDS` ago or more; then ``apply`` those the history no longer says
        are in progress, with their attempts that ended and their tasks' last outcomes (read
        again: the process that ran them exports no
        series of a task it does not hold, so their ends show here or nowhere). The scrape does
        not wait for it: it would wait for a store that is down as long as its connect
        timeout."""
        with self._lock:
            now = self._clock()
            due = self._rechecked is None or now - self._rechecked >= RECHECK_SECONDS
            if self._rechecking or not due:
                return
        runs = watched()
        with self._lock:
            if not runs or self._rechecking:
                return
            self._rechecking, self._rechecked = True, now
        try:
            self._spawn(lambda: self._recheck(runs, apply))
        except BaseException:
            with self._lock:
                self._rechecking = False  # none in flight: the next scrape starts one
            raise

    def _recheck(self, watched: Watched, apply: Apply) -> None:
        try:
            try:
                going = {record.id for record in self._history.running()}
                ended = {
                    run: (key, self.attempts_ended(run, seen))
                    for run, (key, seen) in watched.items()
                    if run not in going
                }
                tasks = {key for key, _ in ended.values()}
                found = self._history.last_outcomes(tasks) if ended else {}
            except Exception as err:
                log.warning(
                    "metrics: cannot read the runs in progress from the run history",
                    extra={"fields": {"error": str(err)[:200]}},
                )
                return
            apply(ended, found)
        finally:
            with self._lock:
                self._rechecking = False

    # -- a seed's thread --------------------------------------------------------------------

    def ended(self, new: Collection[str], going: Sequence[RunRecord]) -> list[RunRecord]:
        """The attempts of ``new`` (the tasks a seed reads) that ended where no process
        exporting them heard it, each once: ``going`` is what the seed read in progress. Reads
        the history (may raise); the runs of :meth:`crashed` read are not given again."""
        found: dict[tuple[str, int], RunRecord] = {}
        for record in (*self._ended_since_moved(new, going), *self._died(new)):
            found.setdefault((record.id, record.attempt), record)
        with self._lock:
            since = self._died_since
            for key in new:
                for ended, record in self._crashed.pop(key, {}).items():
                    at = record.finished_at
                    if at is not None and at.timestamp() >= since:
                        found.setdefault(ended, record)
        return list(found.values())

    def attempts_ended(self, run: str, since: int) -> list[RunRecord]:
        """``run``'s attempts from ``since`` on that ended, as the history holds them."""
        found = self._history.attempts(run)
        return [r for r in found if r.attempt >= since and r.status.finished and not self.mine(r)]

    def _ended_since_moved(
        self, new: Collection[str], going: Sequence[RunRecord]
    ) -> list[RunRecord]:
        """The attempts of ``new``'s runs that were in progress at another replica after the
        last move here, and ended since (no longer in ``going``): their end was heard where
        they ran, which no longer exported their task. Not if the runs after the last move
        are not read yet: older ones would bring runs that ended where their task still was."""
        with self._lock:
            moved = self._moved_runs
            if moved is None or moved[0] != self._moves:
                return []
        still = {record.id for record in going}
        ended: list[RunRecord] = []
        for run, (key, attempt) in moved[1].items():
            if key in new and run not in still:
                ended += self.attempts_ended(run, attempt)
        return ended

    def _died(self, new: Collection[str]) -> list[RunRecord]:
        """The runs of ``new`` marked ``interrupted`` for a dead crontask since this process
        started (with replicas: shortly before the tasks last moved), that no crontask told
        of: those every replica and a start-up without notifications mark."""
        with self._lock:
            since = datetime.fromtimestamp(self._died_since, UTC)
        found: list[RunRecord] = []
        after: tuple[datetime, str, int] | None = None
        for _ in range(_UNTOLD_PAGES):
            page = self._history.untold(since, after)
            found += [r for r in page if r.task in new and died(r) and not self.mine(r)]
            last = page[-1] if page else None
            if last is None or last.finished_at is None:
                break
            after = (last.finished_at, last.id, last.attempt)
        return found


__all__: Sequence[str] = [
    "DIED_BEFORE_MOVE_SECONDS",
    "RECHECK_SECONDS",
    "Apply",
    "Ended",
    "History",
    "UnheardEnds",
    "Watched",
]
