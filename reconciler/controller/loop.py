"""The reconcile loop: takes work from the queue, runs passes, and handles their outcome.

This is the one place where a pass's outcome becomes what follows it: a failed pass puts its
work back on the queue with backoff (so the change it was asked to read is retried, not left
for the periodic resync), a successful one resets the backoff; both are logged here, and
observers of the reconciler (metrics, status, notifications) see every result.

The first pass is a full one, at start-up; then a pass runs whenever work is marked, and a full
resync every ``resync_seconds`` heals whatever an event missed.
"""

from __future__ import annotations

import asyncio
import logging
import time

from reconciler.controller.manager import Ready
from reconciler.controller.queue import Work, WorkQueue
from reconciler.controller.reconcile import Hints, PassResult, Reconciler

log = logging.getLogger("crontask")


class ReconcileLoop:
    name = "reconcile"

    def __init__(
        self, reconciler: Reconciler, queue: WorkQueue, *, resync_seconds: float = 300.0
    ) -> None:
        self.reconciler = reconciler
        self.queue = queue
        self.resync_seconds = resync_seconds

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        try:
            await self.reconcile(Work(resync=True, hints={}))
            ready()
            next_resync = time.monotonic() + self.resync_seconds
            while not stop.is_set():
                timeout = max(0.0, next_resync - time.monotonic())
                work = await self.queue.get(stop, timeout=timeout)
                if stop.is_set():
                    return
                if work is None:  # nothing marked until the resync was due
                    work = Work(resync=True, hints={})
                if work.resync:
                    next_resync = time.monotonic() + self.resync_seconds
                await self.reconcile(work)
        finally:
            self.reconciler.scheduler.shutdown()  # no new slots while the runs wind down

    async def reconcile_now(self, hints: Hints) -> PassResult:
        """A pass for ``hints`` now (an API write waits for it), handled like any other."""
        work = Work(resync=False, hints={k: frozenset(v) for k, v in hints.items()})
        return await self.reconcile(work)

    async def reconcile(self, work: Work) -> PassResult:
        result = await self.reconciler.run_pass(work.pass_hints)
        if result.ok:
            self.queue.done(work)
            _log_pass(result)
        else:
            delay = self.queue.retry(work)
            log.error(
                "reconcile failed; retrying",
                exc_info=result.error,
                extra={
                    "fields": {
                        "in_seconds": round(delay, 3),
                        "failures": self.queue.failures,
                        "resync": work.resync,
                    }
                },
            )
        return result


def _log_pass(result: PassResult) -> None:
    level = logging.INFO if not result.plan.empty or result.resync else logging.DEBUG
    log.log(
        level,
        "reconciled",
        extra={
            "fields": {
                "tasks": len(result.desired.tasks),
                "plan": result.plan.summary(),
                # Counted, not formatted: there may be 100 000 of them.
                "errors": len(result.desired.errors) + len(result.desired.conflicts),
                "seconds": round(result.seconds, 4),
                "resync": result.resync,
            }
        },
    )
