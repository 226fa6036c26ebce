"""The long-lived parts of ``crontask run``, each a ``Component`` (``controller.manager``).

Each one owns one concern and one lifecycle: it starts, says when it is ready, runs until its
stop event, cleans up. Watchers only mark work on the queue; the reconcile loop
(``controller.loop``) does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Collection, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from reconciler.aio import in_thread
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.manager import Ready
from reconciler.core.desired import DesiredState
from reconciler.core.runs import RunRecord
from reconciler.scheduling.base import Scheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sources.base import Source
from reconciler.store.base import RunStore, StoreUnavailable

log = logging.getLogger("crontask")


class SourceWatch:
    """A source's life (``Source.watch``) as a component: what it notifies is marked on the
    work queue under its kind."""

    def __init__(self, source: Source, mark: Callable[[str, Collection[str]], None]) -> None:
        self.source = source
        self.mark = mark
        self.name = f"{source.kind}-source"

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        await self.source.watch(lambda hints: self.mark(self.source.kind, hints), ready, stop)


class Declarations(Protocol):
    """What the sources declare, as the reconciler last read them (``Reconciler``)."""

    @property
    def applied(self) -> bool: ...

    @property
    def desired(self) -> DesiredState: ...


class Housekeeping:
    """Enforces retention every ``interval``: per-task history limits (oldest first) and the
    global maximum age, in the store's threads, so it never blocks the loop.

    Never a run of this process that is not over (``RunStore.prune``'s ``busy``): one waiting
    for its retry has no attempt running, and pruned, its retry would be recorded without the
    attempts before it. ``declarations`` (the reconciler): the tasks declared now, whose mark
    of missed slots stays however old; without it, or while it cannot say (no pass applied, a
    source in error), every task's stays. Without replicas, so does another instance's mark
    (``_owner``): a crontask sharing the store declares its own tasks. ``alone``: instances
    whose beat in the store is no other crontask's (the state directory's last holder, a
    former start of this one); ``beating``: the instances the heartbeat saw beat."""

    name = "housekeeping"

    def __init__(
        self,
        store: RunStore,
        scheduler: Scheduler,
        dispatcher: Dispatcher,
        metrics: Metrics,
        *,
        interval: float,
        max_age: float | None,
        declarations: Declarations | None = None,
        shared: bool = False,
        alone: Collection[str] = (),
        beating: Callable[[], Collection[str]] = lambda: (),
    ) -> None:
        self.store = store
        self.shared = shared  # the store may be another crontask's too (an explicit --db)
        self.alone = frozenset(alone)
        self.beating = beating
        self.scheduler = scheduler
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.interval = interval
        self.max_age = timedelta(seconds=max_age) if max_age else None
        self.declarations = declarations
        self._busy: set[str] | None = None  # while a prune goes on: the runs not over
        dispatcher.subscribe(self._heard)

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            if stop.is_set():
                return
            await self.prune()

    async def prune(self) -> None:
        owned = self.scheduler.owned()
        limits = {
            key: (d.task.spec.successful_runs_history_limit, d.task.spec.failed_runs_history_limit)
            for key, d in owned.items()
        }
        # The runs in flight now, read here on the loop where the dispatcher keeps them; a run
        # that begins while the prune goes on is added as it is heard of (``_heard``), before
        # its first attempt can end: the store only asks ``in``, after reading a run's rows.
        busy = {r.id for key in owned for r in self.dispatcher.active(key)}
        prune = functools.partial(
            self._prune,
            limits,
            self.max_age,
            datetime.now(UTC),
            busy=busy,
            declared=self._declared(owned.keys()),
            retrying=self._retrying(owned.keys()),
        )
        started = time.monotonic()
        self._busy = busy
        try:
            deleted = await self.dispatcher.recorder.call(prune)
        except StoreUnavailable as err:
            # An outage (a full disk, a failover) is one line, as the recorder says it: a
            # traceback of it at every interval tells nothing more.
            log.warning(
                "history pruning failed; will try again", extra={"fields": {"error": str(err)}}
            )
            return
        except Exception:
            log.exception("history pruning failed; will try again")
            return
        finally:
            self._busy = None
        seconds = time.monotonic() - started
        self.metrics.pruned(deleted, seconds, time.time())
        log.info(
            "history pruned", extra={"fields": {"deleted": deleted, "seconds": round(seconds, 3)}}
        )

    def _prune(self, *args: Any, **kwargs: Any) -> int:
        """In the store's thread: ``RunStore.prune``, as the instance that prunes when the
        store is shared now (``_owner``, decided at each prune: a crontask may join later)."""
        return self.store.prune(*args, owner=self._owner(), **kwargs)

    def _heard(self, record: RunRecord) -> None:
        if self._busy is not None:
            self._busy.add(record.id)

    def _declared(self, owned: Collection[str]) -> frozenset[str] | None:
        """Every task declared now (not only this replica's: the max age applies to every
        task), or None when that is not known for sure: before the first pass applied, or
        while a source is in error or reads empty (its tasks may be missing for a while)."""
        if self.declarations is None or not self.declarations.applied:
            return None
        desired = self.declarations.desired
        if desired.errors or desired.conflicts or not desired.tasks:
            return None
        return frozenset(desired.tasks).union(owned)

    def _retrying(self, owned: Collection[str]) -> frozenset[str] | None:
        """The tasks declared with a retry limit, every replica's (their failed runs may wait
        for a retry on any of them: retention by age keeps those for a day or so); None when
        the tasks declared are not known for sure (``_declared``): then every task may."""
        if self._declared(owned) is None or self.declarations is None:
            return None
        tasks = self.declarations.desired.tasks
        return frozenset(key for key, d in tasks.items() if d.task.spec.retry.limit > 0)

    def _owner(self) -> str | None:
        """Without replicas, on a store another crontask may share, this instance: that
        crontask (its own ``--state-dir``, a ``--db`` naming this store) may declare tasks this
        one never heard of, so the mark of a task not declared here stays while it is another
        instance's. The price: a task removed from a crontask keeps its mark until the process
        that recorded it prunes it; one recorded before a restart names an instance no process
        is any more, and stays (one run per such task, as every task's did before marks went
        by age). With replicas (a handover) every replica declares the same tasks: None, then
        ``declared`` says it all.

        A store is shared when it was given by ``--db`` (``shared``), or, the state directory's
        own ``runs.db``, once the heartbeat saw another crontask beat in it (``beating``): one
        whose ``--db`` names that file. It stays shared for the life of this process, for that
        crontask may be down now (it deletes its beat as it stops) and count its missed slots
        from its marks when it starts again. A row no beat was seen of (``RunStore.beats``, read
        in the store's thread) may be that crontask's not judged yet, or the row of a former
        start of this one killed before it was deleted: the marks stay at that prune only.
        Alone on its state directory, this crontask prunes the marks of the tasks it no longer
        declares, as ever: its own beat and its former starts' (``alone``) are no other's."""
        if self.dispatcher.handover is not None:
            return None
        if not self.shared:
            me = self.alone | {self.dispatcher.owner}
            others = set(self.beating()) - me
            if not others:
                return self.dispatcher.owner if set(self.store.beats()) - me else None
            log.info(
                "history pruning: another crontask writes to this state directory's run store; "
                "the runs and marks of the tasks it declares are kept as a shared --db's",
                extra={"fields": {"instances": sorted(others)[:5]}},
            )
            self.shared = True
        return self.dispatcher.owner


class Runs:
    """The dispatcher's lifecycle: on stop, cancel waiting retries, let running runs finish for
    ``grace`` seconds (or until ``hurry``), stop the rest, write every record."""

    name = "runs"

    def __init__(
        self, dispatcher: Dispatcher, grace: float, hurry: asyncio.Event | None = None
    ) -> None:
        self.dispatcher = dispatcher
        self.grace = grace
        self.hurry = hurry

    def closing(self) -> None:
        """The process begins to stop: no new slot, no retry, while the components started
        after this one (the HTTP server among them) stop first."""
        self.dispatcher.close()

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        await stop.wait()
        log.info("crontask stopping", extra={"fields": {"running": self.dispatcher.active_count()}})
        await self.dispatcher.shutdown(self.grace, self.hurry)


class Serving(Protocol):
    """Serves until ``stop`` is set (the HTTP server: the CLI provides it, so that the controller
    never imports the web framework)."""

    def __call__(self, stop: asyncio.Event) -> Coroutine[Any, Any, None]: ...


class Http:
    name = "http"

    def __init__(self, serve: Serving) -> None:
        self.serve = serve

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        ready()  # the socket was bound before start-up: requests queue until it serves
        await self.serve(stop)


class Threaded:
    """A part that runs in threads of its own (the Kubernetes status writer, the Event
    recorder): started with the process, stopped (flushing) after the runs have ended."""

    def __init__(self, name: str, start: Callable[[], None], stop: Callable[[], None]) -> None:
        self.name = name
        self._start = start
        self._stop = stop

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        self._start()
        ready()
        await stop.wait()
        await in_thread(self._stop)


__all__ = [
    "Declarations",
    "Housekeeping",
    "Http",
    "Runs",
    "SourceWatch",
    "Threaded",
]
