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
from typing import Any, Protocol

from reconciler.aio import in_thread
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.manager import Ready
from reconciler.scheduling.base import Scheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sources.base import Source
from reconciler.store.base import RunStore

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
    "Housekeeping",
    "Http",
    "Runs",
    "SourceWatch",
    "Threaded",
]
