"""Each crontask without ``--ha`` beats in the run store, and ends the runs of those whose beat
has stopped.

A crontask that dies leaves its runs ``running``. The next start on the same host ends them
(``instance.recover``: a process of this kernel and pid namespace is judged by its pid, and
the state directory's last holder is dead unless seen alive). A crontask elsewhere cannot be
judged that way: a pod recreated under another name with an ``emptyDir`` state directory and a
shared ``--db``, another machine writing to the same database. Its runs stayed ``running`` for
ever. So each crontask renews a row of its own in the store (``instances``) every
``BEAT_SECONDS``, with its lease (``LEASE_SECONDS``), and deletes it when it stops.

**Judged as client-go's leader election judges a lease**: by whether the row changes, on the
judge's own clock, never by comparing the time written in it with another clock. A row seen
unchanged for its lease, by reads that did not fail in between, has stopped: its crontask is
dead to this one unless this host sees its process alive (``instance.judged``). Whatever the
clocks of the two say, and however long the judge was itself paused (a row it reads after a
pause has changed if the other beat meanwhile). The time from a failed read or beat to the next
good read does not count: after the store was down, every other crontask has as long to beat
again as it had left before (they were cut off too), and a read that fails now and then delays
a judgement by that much only. A new crontask judges nobody before it has watched a lease, so a
pod recreated elsewhere ends its predecessor's runs a lease after it started.

The first to judge a crontask stopped marks its runs ``interrupted`` (``ProcessDied``;
``mark_interrupted`` reports each record to one caller only), and deletes the row once none
of its runs is left running. It only marks: nothing of the other's is killed, as a lapsed row
is evidence, not proof (a crontask paused or cut off from the store for longer than its lease
lives on: it says so when it beats again, and the ends it records later replace these). A Job's
run is left to the Jobs' watch, as at start-up (``outlives``). Only the runs of the tasks this
crontask declares are told to its notifier (``declares``); the others' records say that no
crontask told of them (``UNTOLD``). A crontask that declares such a task takes the note off
and tells of the run (``RunStore.take_untold``: one only), at its first sweep after its first
pass, whenever a row goes or is judged stopped, and after a pass that declared a task anew
(``arrivals``), for runs marked within ``UNTOLD_SECONDS`` (the marker's clock read against this
one's: the only place where they meet): so which crontask judges first does not decide whether
a run is told, nor does a pod recreated after the others judged its predecessor, nor a commit
that moves the task to this crontask after the crash. A run still untold says so to its own
crontask's next start, which does not take it as told (``sinks.notify``).

Replicas (``--ha``) judge each other by their membership (``controller.cluster``) and do not
beat: a row of this table is never a replica's. They judge the rows all the same
(``beating`` False), and leave the runs of an instance that has a row to that judgement: a
crontask without ``--ha`` sharing their store (the old pod of a rolling update to ``--ha``)
is no member, and would otherwise be taken for dead at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

from reconciler.aio import within
from reconciler.controller.instance import Liveness, judged
from reconciler.controller.manager import Ready
from reconciler.core.runs import UNTOLD, RunRecord
from reconciler.store.base import UNTOLD_MAX, RunStore

log = logging.getLogger("crontask")

BEAT_SECONDS: Final = 5.0
# Long enough for a store that answers slowly now and then, short enough that a pod recreated
# elsewhere finds its predecessor's runs ended within a minute of its start.
LEASE_SECONDS: Final = 30.0
# A lease as read back: a row any client of the store may write cannot keep its crontask's
# runs for longer than this, and one whose lease is no sensible number has this one.
LEASE_MAX_SECONDS: Final = 3600.0
# How long after a run was marked untold a crontask that declares its task still tells of it:
# long enough for a pod recreated after its node was lost (the default eviction comes after
# 5 min), short enough that a task declared anew much later hears nothing of an old crash.
UNTOLD_SECONDS: Final = 3600.0
UNTOLD_PAGES: Final = 10  # of UNTOLD_MAX runs each: what one look reads at most
# The other instances ``Heartbeat.seen_beating`` names at most (their ids, for its life).
SEEN_MAX: Final = 64

# Seconds the stop waits for this crontask's row to be removed (it lapses on its own).
FORGET_WAIT: Final = 2.0

T = TypeVar("T")


class StoreCall(Protocol):
    """Runs a blocking store call off the loop (``aio.in_thread``)."""

    async def __call__(self, fn: Callable[..., T], *args: object) -> T: ...


class Heartbeat:
    """A component (``controller.manager``): see the module docstring. ``call`` runs a store
    call off the loop; ``on_interrupted`` hears of the runs marked or taken whose tasks this
    crontask ``declares`` (the notifier's ``crashed``), which it knows once ``declaring``
    (its first pass has applied), and how many passes since declared a task anew
    (``arrivals``); ``monotonic`` is the judge's clock."""

    name = "heartbeat"

    def __init__(
        self,
        store: RunStore,
        me: str,
        *,
        call: StoreCall,
        outlives: Callable[[RunRecord], bool] = lambda record: False,
        declares: Callable[[str], bool] = lambda key: True,
        declaring: Callable[[], bool] = lambda: True,
        arrivals: Callable[[], int] = lambda: 0,
        on_interrupted: Callable[[list[RunRecord]], None] = lambda records: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        interval: float = BEAT_SECONDS,
        lease: float = LEASE_SECONDS,
        beating: bool = True,
        tells: bool = True,
    ) -> None:
        self.store = store
        self.me = me
        self.call = call
        self.outlives = outlives
        self.declares = declares
        self.declaring = declaring
        self.arrivals = arrivals
        self.on_interrupted = on_interrupted
        self.clock = clock
        self.monotonic = monotonic
        self.interval = interval
        self.lease = lease
        self.beating = beating
        self.tells = tells
        # Each other row as last read: its mark, its lease, and for how long (``monotonic``
        # seconds between reads that did not fail) it has read so.
        self._seen: dict[str, tuple[str, float, float]] = {}
        self._last_read: float | None = None  # None: a beat or read failed since
        self._last_beat: float | None = None  # ``monotonic``
        self._failing = False
        # Look for runs marked untold that this crontask declares: at the first sweep after
        # ``declaring``, whenever a row goes, and when ``arrivals`` moves past ``_looked``.
        self._adopt = True
        self._looked = 0
        # The other instances whose row this crontask saw change: they were alive then, not
        # the row a process killed left (``components.Housekeeping``). At most ``SEEN_MAX``.
        self.seen_beating: frozenset[str] = frozenset()

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        await self.beat()
        ready()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
                if not stop.is_set():
                    await _unless_stopped(self.beat(), stop)
        finally:
            # Stopped (its runs ended or interrupted by the shutdown): nothing left to judge.
            if self.beating:
                await self._forget_me()

    async def _forget_me(self) -> None:
        unanswered = TimeoutError(f"the run store did not answer within {FORGET_WAIT:g}s")
        try:
            # Bounded: a store that takes bytes and never answers must not hold the stop.
            await within(self.call(self.store.forget_beats, [self.me]), FORGET_WAIT, unanswered)
        except Exception as err:
            log.warning(
                "heartbeat: could not remove this crontask's row; it lapses on its own",
                extra={"fields": {"error": str(err)[:200]}},
            )

    async def beat(self) -> None:
        """Renew this crontask's row, then end the runs of those whose row has stopped."""
        began = self.monotonic()
        try:
            if self.beating:
                await self.call(self.store.beat, self.me, self.lease, self.clock())
            told = await self.call(self.sweep)
        except Exception as err:
            self._last_read = None  # the time until the next good read does not count
            if not self._failing:
                log.warning(
                    "heartbeat: the run store did not answer; will try again",
                    extra={"fields": {"error": str(err)[:200]}},
                )
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat: the run store answers again", extra={"fields": {}})
        lapsed = self._last_beat is not None and began - self._last_beat > self.lease
        if lapsed and self.beating:  # a replica has no row: its membership says so
            log.warning(
                "heartbeat: this crontask's beat had lapsed; a crontask sharing the store may "
                "have marked its runs interrupted meanwhile",
                extra={"fields": {"seconds": round(began - (self._last_beat or began), 1)}},
            )
        self._failing, self._last_beat = False, began
        if told:
            self.on_interrupted(told)

    def sweep(self) -> list[RunRecord]:
        """In a worker thread: mark the runs of the crontasks whose row has stopped, and take
        those marked untold elsewhere; returns those of the tasks this crontask declares.
        Unless it ``tells`` (a notifier, no replicas: ``Notifier.crashes_told``), every run it
        marks says that nobody told of it, and it takes none."""
        stopped = self._stopped(self.store.beats())
        told = self._mark(stopped) if stopped else []
        if self.tells and self.declaring():
            arrivals = self.arrivals()
            if self._adopt or arrivals != self._looked:
                taken, self._adopt = self._take_untold()
                told, self._looked = told + taken, arrivals
        return told

    def _mark(self, stopped: set[str]) -> list[RunRecord]:
        running = self.store.running()
        owners = {r.owner for r in running if r.owner} & stopped
        states = judged(owners, self.me, gone=owners)  # dead unless this host sees it alive
        dead = {owner for owner, state in states.items() if state is Liveness.DEAD}
        mine = [r for r in running if r.owner in dead and not self.outlives(r)]
        kept = {r.id for r in running if r.owner in dead} - {r.id for r in mine}
        theirs = {r.id for r in mine if not (self.tells and self.declares(r.task))}
        now = self.clock()
        told = self.store.mark_interrupted(dead, now, keep=kept | theirs)
        _interrupted(told)
        try:
            # What is left is found again by the next sweep if this fails: the runs still
            # running, the row still there. Not ``told``: they are marked, and told now.
            _interrupted(self.store.mark_interrupted(dead, now, keep=kept, note=UNTOLD))
            keeping = {r.owner for r in running if r.id in kept} | (owners - dead)
            self.store.forget_beats(stopped - keeping)
        except Exception as err:
            log.warning(
                "heartbeat: the sweep stopped halfway; the next one goes on",
                extra={"fields": {"error": str(err)[:200]}},
            )
        return told

    def _take_untold(self) -> tuple[list[RunRecord], bool]:
        """The runs another crontask marked, of tasks it does not declare and this one does:
        taken (the record no longer says that nobody told of it), to be told here; and whether
        to look again (a read or a take failed: what was taken before it is told all the same).
        Page by page, for the runs of tasks nobody declares stay untold and may be many."""
        since = self.clock() - timedelta(seconds=UNTOLD_SECONDS)
        taken: list[RunRecord] = []
        after: tuple[datetime, str, int] | None = None
        try:
            for _ in range(UNTOLD_PAGES):
                page = self.store.untold(since, after)
                ours = [r.id for r in page if self.declares(r.task)]
                taken += self.store.take_untold(ours) if ours else []
                if len(page) < UNTOLD_MAX or page[-1].finished_at is None:
                    break
                after = (page[-1].finished_at, page[-1].id, page[-1].attempt)
        except Exception as err:
            log.warning(
                "heartbeat: could not read the runs nobody told of; will try again",
                extra={"fields": {"error": str(err)[:200]}},
            )
            return taken, True
        return taken, False

    def _stopped(self, rows: dict[str, tuple[str, float]]) -> set[str]:
        """The other crontasks whose row has read the same for longer than its lease, counted
        between reads with no failure in between (a store down for everyone stops every
        clock; one read that failed costs the time to the next)."""
        now = self.monotonic()
        elapsed = 0.0 if self._last_read is None else now - self._last_read
        self._last_read = now
        for instance in set(self._seen) - set(rows):
            del self._seen[instance]
            # It stopped, or another crontask judged it and may have left runs of tasks it does
            # not declare to a crontask that does.
            self._adopt = True
        stopped: set[str] = set()
        for instance, (mark, lease) in rows.items():
            if instance == self.me:
                continue
            seen = self._seen.get(instance)
            if seen is not None and seen[0] != mark and len(self.seen_beating) < SEEN_MAX:
                self.seen_beating |= {instance}  # a new set: read from other threads
            unchanged = 0.0 if seen is None or seen[0] != mark else seen[2] + elapsed
            self._seen[instance] = (mark, lease, unchanged)
            if unchanged > _bounded(lease):
                stopped.add(instance)
                # Just judged stopped: another crontask may have marked its runs already.
                self._adopt |= seen is not None and seen[2] <= _bounded(lease)
        return stopped


def _interrupted(records: list[RunRecord]) -> None:
    for record in records:
        log.warning(
            "run interrupted: its crontask stopped beating",
            extra={"fields": {"task": record.task, "run": record.id, "owner": record.owner}},
        )


def _bounded(lease: float) -> float:
    return lease if 0.0 <= lease <= LEASE_MAX_SECONDS else LEASE_MAX_SECONDS  # NaN too


async def _unless_stopped(beat: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """``beat``, abandoned ``FORGET_WAIT`` after ``stop`` is set: a beat waiting for a store
    that takes bytes and never answers (its thread goes on, abandoned too) must not hold the
    stop. One that a store in good health answers ends: its sweep may have marked runs
    interrupted or taken them from the untold, which only its end tells of (a crash's
    notification), and its write, were it left to land after the stop's removal of this
    crontask's row, would bring the row back."""
    beating = asyncio.ensure_future(beat)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({beating, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not beating.done():
        await asyncio.wait({beating}, timeout=FORGET_WAIT)
    if not beating.done():
        beating.cancel()
        return
    beating.result()
