"""The long-lived parts of ``crontask run``, each a ``Component`` (``controller.manager``).

Each one owns one concern and one lifecycle: it starts, says when it is ready, runs until its
stop event, cleans up. Watchers only mark work on the queue; the reconcile loop
(``controller.loop``) does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.manager import Ready
from reconciler.controller.waiting import first_of
from reconciler.scheduling.base import Scheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import ApiSource
from reconciler.sources.git import GitSource
from reconciler.sources.watch import watch_paths
from reconciler.store.base import RunStore

log = logging.getLogger("crontask")

Mark = Callable[[Collection[str]], None]


class FileWatch:
    """Marks the changed paths of folder sources. Ready once the OS watches exist, so that the
    first pass, which reads after it, leaves nothing written meanwhile for the resync."""

    name = "file-watch"

    def __init__(self, paths: Collection[Path], mark: Mark) -> None:
        self.paths = list(paths)
        self.mark = mark

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        armed = asyncio.Event()
        watching = asyncio.ensure_future(watch_paths(self.paths, self.mark, stop, armed=armed))
        await first_of(armed, _ended(watching))
        ready()
        await watching


def _ended(task: asyncio.Future[Any]) -> asyncio.Event:
    ended = asyncio.Event()
    task.add_done_callback(lambda _: ended.set())
    return ended


class GitSync:
    """Fetches on the interval (or the backoff after failures), or at once when a webhook
    asks (``wanted``); a new revision marks the git source.

    Ready after the first sync attempt when no revision is in force yet. When one is (the
    revision in force before a restart, which the source reads from disk), ready at once and
    the first fetch follows: a remote that hangs must not hold back the tasks, and everything
    started after this component (the API among them), for up to the git timeout."""

    name = "git-sync"

    def __init__(self, git: GitSource, mark: Mark, metrics: Metrics) -> None:
        self.git = git
        self.mark = mark
        self.metrics = metrics
        self.wanted = asyncio.Event()

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        if self.git.status().applied_revision is None:
            await self._sync(stop)
            ready()
        else:
            ready()
            await self._sync(stop)
        while not stop.is_set():
            await first_of(stop, self.wanted, timeout=self.git.status().next_retry_in)
            self.wanted.clear()
            if stop.is_set():
                return
            await self._sync(stop)

    async def _sync(self, stop: asyncio.Event) -> None:
        syncing = asyncio.ensure_future(asyncio.to_thread(self.git.sync))
        await first_of(stop, _ended(syncing))
        if not syncing.done():
            # Stopping: a fetch in flight (from a remote that hangs, perhaps) is killed rather
            # than waited for, up to the git timeout.
            self.git.cancel()
        if await syncing:
            self.mark(())
        if self.git.status().last_error and not stop.is_set():
            self.metrics.source_sync_failed(self.git.kind)


class ApiPoll:
    """With replicas: another replica's write of an API task reaches this one by polling the
    shared store's versions (a cheap query) every ``interval`` seconds."""

    name = "api-poll"

    def __init__(self, source: ApiSource, mark: Mark, interval: float = 2.0) -> None:
        self.source = source
        self.mark = mark
        self.interval = interval

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        while not stop.is_set():
            await first_of(stop, timeout=self.interval)
            if stop.is_set():
                return
            try:
                changed = await asyncio.to_thread(self.source.changed)
            except Exception as err:  # the store is away: the next poll tries again
                log.debug("api task poll failed", extra={"fields": {"error": str(err)}})
                continue
            if changed:
                self.mark(changed)


class Housekeeping:
    """Enforces retention every ``interval``: per-task history limits (oldest first) and the
    global maximum age, in the store's threads, so it never blocks the loop."""

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
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.interval = interval
        self.max_age = timedelta(seconds=max_age) if max_age else None

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            if stop.is_set():
                return
            await self.prune()

    async def prune(self) -> None:
        limits = {
            key: (d.task.spec.successful_runs_history_limit, d.task.spec.failed_runs_history_limit)
            for key, d in self.scheduler.owned().items()
        }
        started = time.monotonic()
        try:
            deleted = await self.dispatcher.recorder.call(
                self.store.prune, limits, self.max_age, datetime.now(UTC)
            )
        except Exception:
            log.exception("history pruning failed; will try again")
            return
        seconds = time.monotonic() - started
        self.metrics.pruned(deleted, seconds, time.time())
        log.info(
            "history pruned", extra={"fields": {"deleted": deleted, "seconds": round(seconds, 3)}}
        )


class Runs:
    """The dispatcher's lifecycle: on stop, cancel waiting retries, let running runs finish for
    ``grace`` seconds, stop the rest, write every record."""

    name = "runs"

    def __init__(self, dispatcher: Dispatcher, grace: float) -> None:
        self.dispatcher = dispatcher
        self.grace = grace

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        await stop.wait()
        log.info("crontask stopping", extra={"fields": {"running": self.dispatcher.active_count()}})
        await self.dispatcher.shutdown(self.grace)


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
        await asyncio.to_thread(self._stop)


class Informer:
    """The Kubernetes source's list+watch. Ready once listed (up to ``wait`` seconds), so the
    first pass sees the objects; its changes mark their keys."""

    name = "kubernetes-informer"

    def __init__(
        self, start: Callable[[float], object], stop: Callable[[], None], wait: float = 30.0
    ) -> None:
        self._start = start
        self._stop = stop
        self.wait = wait

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self._start, self.wait)
        ready()
        await stop.wait()
        await asyncio.to_thread(self._stop)


__all__ = [
    "ApiPoll",
    "FileWatch",
    "GitSync",
    "Housekeeping",
    "Http",
    "Informer",
    "Runs",
    "Threaded",
]
