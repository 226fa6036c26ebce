"""Each crontask without ``--ha`` beats in the run store, and ends the runs of those whose beat
has lapsed.

A crontask that dies leaves its runs ``running``. The next start on the same host ends them
(``instance.recover``: a process of this kernel and pid namespace is judged by its pid, and
the state directory's last holder is dead unless seen alive). A crontask elsewhere cannot be
judged that way: a pod recreated under another name with an ``emptyDir`` state directory and a
shared ``--db``, another machine writing to the same database. Its runs stayed ``running`` for
ever. So each crontask renews a row of its own in the store (``instances``) every
``BEAT_SECONDS``, with its lease (``LEASE_SECONDS``), and deletes it when it stops; one whose
row has lapsed is dead to every crontask sharing the store, unless this host sees it alive
(``instance.judged``). Whoever sees it first marks its runs ``interrupted`` (``ProcessDied``;
``mark_interrupted`` reports each record to one caller only), tells its notifier, and deletes
the row once none of its runs is left running. A Job's run is left to the Jobs' watch, as at
start-up (``outlives``).

A lapsed row is evidence, not proof: a crontask cut off from the database (or paused) for
longer than its lease may still be running commands. It cannot record their ends meanwhile
either; when it can again, it says that its beat had lapsed. The beat's time is the beating
crontask's clock, the judgement the judging one's: crontasks sharing a store must keep their
clocks within a few seconds of each other (NTP does), far less than the lease.

Replicas (``--ha``) judge each other by their membership (``controller.cluster``) and do not
beat: a row of this table is never a replica's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, TypeVar

from reconciler.controller.instance import Liveness, judged
from reconciler.controller.manager import Ready
from reconciler.core.runs import RunRecord
from reconciler.store.base import RunStore

log = logging.getLogger("crontask")

BEAT_SECONDS: Final = 5.0
# Long enough for a store that answers slowly now and then, short enough that a pod recreated
# elsewhere finds its predecessor's runs ended within a minute of its death.
LEASE_SECONDS: Final = 30.0

T = TypeVar("T")


class StoreCall(Protocol):
    """Runs a blocking store call off the loop (``Recorder.call``)."""

    async def __call__(self, fn: Callable[..., T], *args: object) -> T: ...


class Heartbeat:
    """A component (``controller.manager``): see the module docstring. ``call`` runs a store
    call off the loop (the dispatcher's recorder: with the runs' own writes, never beside
    them); ``on_interrupted`` hears of the runs marked (the notifier's ``crashed``)."""

    name = "heartbeat"

    def __init__(
        self,
        store: RunStore,
        me: str,
        *,
        call: StoreCall,
        outlives: Callable[[RunRecord], bool] = lambda record: False,
        on_interrupted: Callable[[list[RunRecord]], None] = lambda records: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        interval: float = BEAT_SECONDS,
        lease: float = LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.me = me
        self.call = call
        self.outlives = outlives
        self.on_interrupted = on_interrupted
        self.clock = clock
        self.interval = interval
        self.lease = lease
        self._last_beat: datetime | None = None
        self._failing = False

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        await self.beat()
        ready()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
                if not stop.is_set():
                    await self.beat()
        finally:
            # Stopped (its runs ended or interrupted by the shutdown): nothing left to judge.
            try:
                await self.call(self.store.forget_beats, [self.me])
            except Exception as err:
                log.warning(
                    "heartbeat: could not remove this crontask's row; it lapses on its own",
                    extra={"fields": {"error": str(err)[:200]}},
                )

    async def beat(self) -> None:
        """Renew this crontask's row, then end the runs of those whose row has lapsed."""
        now = self.clock()
        try:
            await self.call(self.store.beat, self.me, self.lease, now)
            found = await self.call(self.sweep)
        except Exception as err:
            if not self._failing:
                log.warning(
                    "heartbeat: the run store did not answer; will try again",
                    extra={"fields": {"error": str(err)[:200]}},
                )
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat: the run store answers again", extra={"fields": {}})
        lapsed = self._last_beat is not None and now - self._last_beat > timedelta(
            seconds=self.lease
        )
        if lapsed:
            log.warning(
                "heartbeat: this crontask's beat had lapsed; a crontask sharing the store may "
                "have marked its runs interrupted meanwhile",
                extra={"fields": {"since": self._last_beat.isoformat() if self._last_beat else ""}},
            )
        self._failing, self._last_beat = False, now
        if found:
            self.on_interrupted(found)

    def sweep(self) -> list[RunRecord]:
        """In the store's thread: the runs of lapsed crontasks, marked ``interrupted``."""
        now = self.clock()
        lapsed = self.store.lapsed(now)
        if not lapsed:
            return []
        running = self.store.running()
        owners = {r.owner for r in running if r.owner} & lapsed
        states = judged(owners, self.me, gone=owners)  # dead unless this host sees it alive
        dead = {owner for owner, state in states.items() if state is Liveness.DEAD}
        keep = [r.id for r in running if r.owner in dead and self.outlives(r)]
        interrupted = self.store.mark_interrupted(dead, now, keep=keep)
        for record in interrupted:
            log.warning(
                "run interrupted: its crontask stopped beating",
                extra={"fields": {"task": record.task, "run": record.id, "owner": record.owner}},
            )
        kept = {r.owner for r in running if r.id in keep}
        self.store.forget_beats(lapsed - kept - (owners - dead) - {self.me})
        return interrupted
