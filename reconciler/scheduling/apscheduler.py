"""The APScheduler 3.11 adapter: the only module of crontask that imports apscheduler.

crontask owns misfire, concurrency, timeout and retry semantics, so nothing is left to
APScheduler's defaults (``misfire_grace_time=1`` and ``max_instances=1`` would skip slots with
no more than a log line):

- ``misfire_grace_time=None``: APScheduler never drops a late slot; the dispatcher decides with
  ``startingDeadlineSeconds`` and records the skip.
- ``coalesce=True``: a backlog (the loop was blocked) becomes one hand-off of the latest slot;
  the dispatcher accounts for the slots in between.
- Jobs are handed off by an executor that calls the fire callback on the event loop and returns
  at once; runs never occupy APScheduler's executor, so ``max_instances`` never refuses a slot.
- Fire times come from crontask's own schedule engine through ``_ScheduleTrigger``:
  APScheduler's CronTrigger differs from cron in day-of-week numbering, in the
  day-of-month/day-of-week rule, and around DST.
- An in-memory job store: the desired state lives in the sources and the history in the run
  store, so nothing is pickled. APScheduler's own, except that the jobs added when the
  scheduler starts (every job of the first pass) are sorted once, not inserted one by one
  (``_StartUpJobStore``).
- A slot is handed over ahead of its instant (``_Scheduler``): long enough for the dispatcher
  to decide its run and have its claim accepted before the slot, so that the process starts on
  the slot (the dispatcher makes the start wait for it).
- A wake-up hands over at most ``DUE_PER_WAKEUP`` due jobs and wakes again at once while
  more are due. Handed over whole, a burst of 1 000 same-second tasks kept the loop for about
  30 ms before the first run whose claim was already accepted could start its process.
- A pass applies its steps one after another on the event loop, and APScheduler wakes itself
  (a loop callback that looks for due jobs) after every ``add_job``/``remove_job`` of a running
  scheduler: 10 000 wake-ups for 10 000 steps. So while a batch of steps is applied the
  scheduler is paused, and it resumes, with one wake-up, as soon as the loop is free again.
  Nothing can fire in between anyway: the loop is busy applying the batch.
- Every next fire time APScheduler stores comes from the trigger (when a job is added, and for
  the slot after each one it hands off), so the trigger's last answer *is* the job's next run
  time: ``snapshot()`` reads it there, with the slot it followed, and never asks APScheduler's
  job store (whose lock its own wake-ups hold) or the schedule engine again.
- The scheduler waits for its next slot at most ``WAKE_MAX`` seconds at a time. It works out
  the wait from the wall clock, but its timer (``loop.call_later``) counts on the monotonic
  clock, which a wall clock stepped forward leaves behind and a suspended host stops: a slot
  due an hour ahead would come an hour late. A spare wake-up only looks at the head of the job
  store. A step back leaves every job its next slot, and is said once (``wall_clock``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import inspect
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import datetime_to_utc_timestamp

from reconciler.core.desired import Definition
from reconciler.core.plan import Operation, Step
from reconciler.core.schedule import Schedule
from reconciler.core.timing import AHEAD_MAX
from reconciler.scheduling.base import FireCallback, Scheduled, schedule_of
from reconciler.scheduling.wall_clock import ClockWatch, latest_due

log = logging.getLogger("crontask.scheduler")

JOB_PREFIX = "crontask:"
_EPSILON = timedelta(microseconds=1)
_NO_SLOTS: tuple[datetime | None, datetime | None] = (None, None)

# The slot after a fired one, shared by the triggers of equal schedules: the tasks due at the
# same instant mostly share an expression ("0 * * * *"), and the scheduler asks each of them
# for its next slot while it hands the burst over, on the loop, before the next runs start.
# Keyed by (schedule, fired slot); emptied when it grows past _SHARED_MAX (a cache, no more).
_shared_next: dict[tuple[Schedule, datetime], datetime | None] = {}
_SHARED_MAX = 4096
# How many due jobs one wake-up hands over; the rest follow in the next turns of the loop.
DUE_PER_WAKEUP = 16
# How long before its slot a job is handed over: AHEAD_BASE, and AHEAD_PER_RUN for each job
# due at that instant, at most AHEAD_MAX. Deciding a run, claiming it and handing it to the
# spawner took 0.5-1 ms per run in `crontask run` on two busy cores (a burst of 100 due
# together: the last was ready 29-103 ms after the slot with 20 ms + 0.3 ms per run, 88-97 ms
# before it with these figures).
AHEAD_BASE = 0.05
AHEAD_PER_RUN = 0.001
# The longest the scheduler waits before it looks at the wall clock again (module docstring):
# how late a slot may come after the clock stepped forward or the host resumed from suspend.
WAKE_MAX = 2.0


class _ScheduleTrigger(BaseTrigger):  # type: ignore[misc]
    __slots__ = ("_first", "_first_gap", "_last", "schedule")

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        # The answer to the first question (no previous fire time): the job's first slot, or
        # the due slot an update carried over, which APScheduler never asks about (apply).
        self._first: datetime | None = None
        # The last question with a previous fire time and its answer, as one attribute so that
        # another thread reads a consistent pair. It doubles as a cache: APScheduler asks twice
        # per fire for the slot after the one it fires (once to collect due run times, once to
        # reschedule), and that slot arithmetic was half of its cost per job when a thousand
        # jobs are due together.
        self._last = _NO_SLOTS
        # (first slot, seconds to the one after): computed once, by the first snapshot.
        self._first_gap: tuple[datetime, float | None] | None = None

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        last = self._last
        if previous_fire_time is not None and previous_fire_time == last[0]:
            return last[1]
        if previous_fire_time is None:
            # On the first call a slot at exactly `now` still counts (hence the epsilon).
            at = self.schedule.next_after(now - _EPSILON)
            # No tuple here: 10 000 jobs added at start-up would be 10 000 more objects for
            # the garbage collector to trace while the first pass holds the loop.
            self._first = result = at.astimezone(UTC) if at is not None else None
            return result
        key = (self.schedule, previous_fire_time)
        try:
            result = _shared_next[key]
        except KeyError:
            at = self.schedule.next_after(previous_fire_time)
            result = at.astimezone(UTC) if at is not None else None
            if len(_shared_next) >= _SHARED_MAX:
                _shared_next.clear()
            _shared_next[key] = result
        self._last = (previous_fire_time, result)
        return result

    def slots(self) -> tuple[datetime | None, float | None]:
        """(next fire time, seconds of the current interval) as the scheduler holds them;
        safe from any thread."""
        previous, following = self._last
        if previous is not None:
            if following is None:
                return None, None
            return following, following.timestamp() - previous.timestamp()
        following = self._first  # not fired since it was added
        if following is None:
            return None, None
        first = self._first_gap
        if first is None or first[0] != following:
            after = self.schedule.next_after(following)
            # In real seconds (subtracting datetimes of one zone counts wall-clock time).
            first = (following, after.timestamp() - following.timestamp() if after else None)
            self._first_gap = first
        return following, first[1]

    def __str__(self) -> str:
        return f"crontask[{self.schedule.expression}]"


class _StartUpJobStore(MemoryJobStore):  # type: ignore[misc]
    """APScheduler's memory store, which places the jobs added during ``batch()`` in one sort
    and gives out a burst's due jobs in parts (``get_due_jobs``).

    The store keeps its jobs in a list ordered by next run time, then id, and puts each new
    one in its place: a binary search in Python, then a list insert that moves the half of the
    list behind it. The scheduler adds every job pending at its start (all of the first
    pass's) that way: at 100 000 jobs that was a tenth of the start-up. During ``batch()``
    jobs are appended, and the list is sorted once, when the batch ends or when anything
    reads it first; each method that reads the list sorts it before.
    """

    _jobs: list[tuple[Any, float | None]]  # MemoryJobStore's: (job, next run timestamp)

    def __init__(self) -> None:
        super().__init__()
        self._batching = False
        self._unsorted = False
        self._ahead: tuple[float | None, float] = (None, AHEAD_BASE)  # (instant, its lead)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            self._settle()

    def add_job(self, job: Any) -> None:
        self._ahead = (None, AHEAD_BASE)  # one more job may be due with the first instant
        if not self._batching:
            self._settle()
            super().add_job(job)
            return
        if job.id in self._jobs_index:
            raise ConflictingIdError(job.id)
        entry = (job, datetime_to_utc_timestamp(job.next_run_time))
        self._jobs.append(entry)
        self._jobs_index[job.id] = entry
        self._unsorted = True

    def _settle(self) -> None:
        if self._unsorted:
            # A new list, swapped in: a reader never sees one half sorted (or, as during an
            # in-place sort, empty).
            self._jobs = sorted(self._jobs, key=_in_store_order)
            self._unsorted = False

    def get_due_jobs(self, now: datetime) -> list[Any]:
        """The first ``DUE_PER_WAKEUP`` due jobs, in order. The scheduler wakes again at
        once while jobs are still due, so a burst is handed over in parts, and between two
        parts the loop starts the runs whose claims the store has accepted meanwhile."""
        self._settle()
        until = datetime_to_utc_timestamp(now)
        due: list[Any] = []
        for job, timestamp in self._jobs:
            if timestamp is None or timestamp > until or len(due) == DUE_PER_WAKEUP:
                break
            due.append(job)
        return due

    def get_next_run_time(self) -> datetime | None:
        self._settle()
        return super().get_next_run_time()  # type: ignore[no-any-return]

    def ahead(self) -> float:
        """Seconds ahead of the first pending instant that its jobs are handed over, by how
        many are due then. Worked out once per instant, when it is first asked, with all of
        its jobs still waiting: a lead that shrank as the jobs are handed over would pace the
        hand-over instead of letting it run ahead."""
        self._settle()
        jobs = self._jobs
        if not jobs or jobs[0][1] is None:
            return AHEAD_BASE
        first = jobs[0][1]
        if self._ahead[0] != first:
            due = bisect.bisect_right(jobs, first, key=_timestamp)
            self._ahead = (first, min(AHEAD_MAX, AHEAD_BASE + AHEAD_PER_RUN * due))
        return self._ahead[1]

    def get_all_jobs(self) -> list[Any]:
        self._settle()
        return super().get_all_jobs()  # type: ignore[no-any-return]

    def update_job(self, job: Any) -> None:
        self._settle()
        super().update_job(job)

    def remove_job(self, job_id: str) -> None:
        self._settle()
        super().remove_job(job_id)


def _timestamp(entry: tuple[Any, float | None]) -> float:
    return math.inf if entry[1] is None else entry[1]


def _in_store_order(entry: tuple[Any, float | None]) -> tuple[float, str]:
    """MemoryJobStore's order: by next run time (none: last), then by id."""
    job, timestamp = entry
    return (math.inf if timestamp is None else timestamp, job.id)


class _HandOffExecutor(BaseExecutor):  # type: ignore[misc]
    """Hands each due slot to crontask at once, on the scheduler's event loop."""

    def __init__(self, fired: FireCallback) -> None:
        super().__init__()
        self._fired = fired

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        key = str(job.id).removeprefix(JOB_PREFIX)
        for at in run_times:
            self._fired(key, at.astimezone(UTC))

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        raise NotImplementedError  # submit_job above does the whole work


class _Scheduler(AsyncIOScheduler):  # type: ignore[misc]
    """APScheduler's asyncio scheduler, which hands slots over ahead of time and lets go of
    the GIL between two parts of a burst.

    **Ahead.** A slot is handed over ``_StartUpJobStore.ahead()`` before it: long enough for
    the dispatcher to decide each run and have its claim accepted, so that its process starts
    on the slot instead of after that work (the start waits for the slot: see
    ``controller.dispatch``). APScheduler's own ``_process_jobs`` hands over only what is due
    at ``now``; this one is that method for crontask's one store and executor, due at ``now``
    plus the lead, with no submission events (nothing listens to them).

    **The GIL.** The threads that a burst's first runs wait for (the store's, writing their
    claims; a spawner's, back from ``posix_spawn``) need the GIL that the loop's thread holds
    while it hands the burst over, and they waited for it: in a burst of 1 000 same-second
    tasks the first claim, under 1 ms of SQLite's work, came back 4 to 20 ms after it was
    sent. A ``time.sleep(0)`` after each part lets go of the GIL where those threads take it:
    the claim came back in 1.5 to 2 ms (``bench/lateness.py --worker command 1000 --store
    sqlite``).
    """

    def __init__(self, store: _StartUpJobStore, executor: _HandOffExecutor) -> None:
        super().__init__(
            timezone=UTC,
            jobstores={"default": store},
            executors={"default": executor},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._store = store
        self._handoff = executor
        self._clock = ClockWatch()

    def _process_jobs(self) -> float | None:
        if self.state == STATE_PAUSED:
            return None
        store = self._store
        now, mono = datetime.now(UTC), monotonic()  # together: a slow hand-off is no step
        with self._jobstores_lock:
            horizon = now + timedelta(seconds=store.ahead())
            for job in store.get_due_jobs(horizon):
                # Coalesced: a backlog is handed over as its latest slot due now (the
                # dispatcher accounts for the others); a job not due yet, as its next slot.
                # Coalescing up to the horizon instead would make a slot handed over a little
                # late give way to the next one whenever the lead is near the interval.
                slot = latest_due(job, now)
                try:
                    self._handoff.submit_job(job, [slot])
                except Exception:
                    # As APScheduler's own: a slot the callback failed on costs that slot
                    # (logged), never the job's next one or the other jobs'.
                    log.exception("could not hand a slot over", extra={"fields": {"job": job.id}})
                following = job.trigger.get_next_fire_time(slot, now)
                if following is None:
                    store.remove_job(job.id)
                else:
                    job._modify(next_run_time=following)
                    store.update_job(job)
            wake = store.get_next_run_time()
        self._clock.woke(now, mono, wake)
        if wake is None:
            return None
        wait = wake.timestamp() - store.ahead() - time.time()
        if wait <= 0:  # more jobs are due: the next part follows in the next turn
            time.sleep(0)
            return 0.0
        return min(wait, WAKE_MAX)


class ApsScheduler:
    """Runs on the asyncio event loop that calls ``start()``."""

    def __init__(self, on_fire: FireCallback) -> None:
        self._owned: dict[str, Definition] = {}
        # What snapshot() reads from other threads, with _owned; both written under the lock.
        self._triggers: dict[str, _ScheduleTrigger] = {}
        self._lock = threading.Lock()
        self._store = _StartUpJobStore()
        self._aps = _Scheduler(self._store, _HandOffExecutor(on_fire))

    def start(self) -> None:
        if not self._aps.running:  # starting twice changes nothing
            with self._store.batch():  # the jobs added so far get their places in one sort
                self._aps.start()

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def apply(self, step: Step) -> None:
        self._hold_wakeups()
        job_id = JOB_PREFIX + step.key
        if step.operation is Operation.REMOVE:
            with self._lock:
                self._owned.pop(step.key, None)
                self._triggers.pop(step.key, None)
            # Already gone is fine: applying a step twice changes nothing.
            with contextlib.suppress(JobLookupError):
                self._aps.remove_job(job_id)
            return
        assert step.desired is not None
        trigger = _ScheduleTrigger(schedule_of(step.desired))
        options: dict[str, Any] = {}
        if step.desired.task.spec.suspend:
            options["next_run_time"] = None  # a paused job: kept, fires nothing
        elif step.operation is Operation.UPDATE and (due := self._due(step.key, trigger)):
            # A slot that came due while the loop was busy (this pass) is still owed: the
            # changed job starts there, not at the new trigger's first slot after now.
            options["next_run_time"] = trigger._first = due
        self._aps.add_job(
            _never_called,
            trigger=trigger,
            id=job_id,
            name=step.key,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
            **options,
        )
        with self._lock:
            self._owned[step.key] = step.desired
            self._triggers[step.key] = trigger

    def _due(self, key: str, trigger: _ScheduleTrigger) -> datetime | None:
        """The job's next slot, if it is due, not handed over yet, and ``trigger`` keeps the
        job's schedule (zone and jitter too). A new one starts at its first slot after now,
        and ``account_for_slots`` runs its latest slot since the last run, as after a restart;
        the old schedule's due slot is not one of its slots."""
        held = self._triggers.get(key)
        if held is None or held.schedule != trigger.schedule:
            return None
        job = self._aps.get_job(JOB_PREFIX + key)
        at: datetime | None = None if job is None else job.next_run_time
        return at if at is not None and at <= datetime.now(UTC) else None

    def _hold_wakeups(self) -> None:
        """Pause a running scheduler until the loop is free again (see the module docstring)."""
        if self._aps.state != STATE_RUNNING:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not called on a loop: no batch to wait for
        self._aps.pause()
        loop.call_soon(self._release_wakeups)

    def _release_wakeups(self) -> None:
        if self._aps.state == STATE_PAUSED:
            self._aps.resume()  # one wake-up for the whole batch

    def owned(self) -> Mapping[str, Definition]:
        return self._owned

    def next_fire_time(self, key: str) -> datetime | None:
        # Once started, from the store's index: the task list asks for each task of a page,
        # on the loop, and get_job (a lock, the pending jobs walked) took 10 times as long.
        aps, job_id = self._aps, JOB_PREFIX + key
        job = self._store.lookup_job(job_id) if aps.running else aps.get_job(job_id)
        if job is None or job.next_run_time is None:
            return None
        at: datetime = job.next_run_time
        return at.astimezone(UTC)

    def snapshot(self) -> Mapping[str, Scheduled]:
        with self._lock:  # two copies at C speed; the loop's apply() waits no longer
            return _Snapshot(dict(self._owned), dict(self._triggers))


class _Snapshot(Mapping[str, Scheduled]):
    """The tasks owned at one instant; each one's entry is made when it is read, from its
    trigger as it is then.

    A scrape reads every task once or twice over a few hundred milliseconds. Entries made up
    front would be one object per task alive for all that time: the young collections that the
    scrape's allocations trigger would move them all to the oldest generation, and at 10 000
    tasks that was enough to set off a full collection (100 ms of the event loop's time too)
    at nearly every scrape. Made when read, each entry is gone before the next collection.
    """

    __slots__ = ("_owned", "_triggers")

    def __init__(self, owned: dict[str, Definition], triggers: dict[str, _ScheduleTrigger]):
        self._owned = owned
        self._triggers = triggers

    def __getitem__(self, key: str) -> Scheduled:
        return Scheduled(self._owned[key], *self._triggers[key].slots())

    def __iter__(self) -> Iterator[str]:
        return iter(self._triggers)

    def __len__(self) -> int:
        return len(self._triggers)

    def __contains__(self, key: object) -> bool:
        return key in self._triggers

    def __repr__(self) -> str:  # what a failed comparison in a test shows
        return repr(dict(self))


def _never_called() -> None:
    """The job function APScheduler requires; the hand-off executor never calls it."""
    raise AssertionError("crontask jobs are handed off, not called")


# APScheduler checks the job function's signature at every add_job; a signature given ahead
# is returned as it is, instead of being worked out anew (0.5 s of a start with 100 000 tasks).
_never_called.__signature__ = inspect.signature(_never_called)  # type: ignore[attr-defined]
