"""Forbid, and runs whose processes have exited before the loop heard of it.

Under ``Forbid`` a run holds its task until its process has exited and its end record is
written, or ``stops.LET_GO_AFTER`` after its end if the store is slow (``RunStops._save_end``).
The kernel knows of an exit before the loop does, a turn later at best: after a stall of the
loop spanning both a run's exit and its task's next slot (crontask stopped by SIGSTOP, a frozen
VM), the scheduler's late timer and the run's pidfd are ready in the same turn, and the slot,
decided first, was turned away for a run that had ended, often the one slot that should run
after the pause. So when every run holding the task is a command whose process has exited
(``process.has_exited``, which does not reap it), the slot's decision waits for their ends,
``LET_GO_AFTER`` at most (and a margin: the runs' own wait for the store begins once the loop
has heard their exits), and is taken then, once (``Dispatcher.fire`` with ``waited``): a run if
they no longer hold the task, else the skip it would have had. A process still running, a retry
waiting for its backoff, a claim waiting for the store and a Job (no process here) hold the task
at once, as before; a manual run is answered at once, as before. A change of the task (a
suspend too: ``AheadSlots.before_change``) decides its waiting slots at once, as they stood;
so does crontask's stop (``decide_closing``): the skip, if the runs still hold the task, else
not started, as any slot while crontask stops. A replica paused meanwhile does not start the
slot either, as any slot while paused (``Dispatcher._not_started``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime
from typing import Any, Protocol

from reconciler.controller.active import ActiveRun
from reconciler.controller.stops import LET_GO_AFTER
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, Trigger
from reconciler.runner.command import CommandRun
from reconciler.runner.process import has_exited

log = logging.getLogger("crontask.runner")

# Beyond ``LET_GO_AFTER``, how long a decision waits at most for the runs to leave: their
# let-go timer starts once the loop has heard their exits and reached their end record.
_MARGIN = 0.25  # seconds


class _Fire(Protocol):
    """``Dispatcher.fire``'s signature."""

    def __call__(
        self,
        definition: Definition,
        scheduled_at: datetime,
        trigger: Trigger = ...,
        *,
        waited: bool = ...,
    ) -> RunRecord: ...


@dataclasses.dataclass(slots=True, eq=False)
class _Waiting:
    """A slot whose decision waits for the ends of the runs that held its task."""

    definition: Definition
    scheduled_at: datetime
    trigger: Trigger
    woken: asyncio.Future[None]  # done to decide at once (``decide_now``)


class EndsAwaited:
    """The waits of :class:`~reconciler.controller.dispatch.Dispatcher` for ended runs (a mixin:
    the dispatcher holds the state declared here, and decides a slot with ``fire``)."""

    _active: dict[str, dict[str, ActiveRun]]
    # Record writes not tied to a run; a decision waiting is kept there too, so that drain and
    # shutdown wait for it.
    _writes: set[asyncio.Task[None]]
    # By task, by run id: the slots whose decision waits.
    _ends_awaited: dict[str, dict[str, _Waiting]]
    # The runs a decision waits for, each with a future done once it leaves ``_active``.
    _leaving: dict[ActiveRun, asyncio.Future[None]]
    fire: _Fire

    def await_ends(
        self, definition: Definition, record: RunRecord, running: dict[str, ActiveRun]
    ) -> bool:
        """Whether ``record``'s slot, which Forbid would turn away for ``running``, waits for
        their ends instead (see the module docstring); it is decided on a later turn then."""
        if record.trigger is Trigger.MANUAL or not all(map(_exited, running.values())):
            return False
        loop = asyncio.get_running_loop()
        waiting = _Waiting(definition, record.scheduled_at, record.trigger, loop.create_future())
        self._ends_awaited.setdefault(record.task, {})[record.id] = waiting
        ends = {self._leaving.setdefault(a, loop.create_future()) for a in running.values()}
        task = loop.create_task(self._after_ends(record, waiting, ends), name=f"ends {record.id}")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        log.info(
            "slot waits for the end records of runs whose processes have exited",
            extra={"fields": {"task": record.task, "run": record.id, "after": sorted(running)}},
        )
        return True

    def awaits_ends(self, key: str, run: str) -> bool:
        """Whether the decision of run ``run``'s slot waits (``await_ends``)."""
        return run in self._ends_awaited.get(key, {})

    def decide_now(self, key: str) -> None:
        """``key``'s task is about to change, suspended too, or to be removed
        (``AheadSlots.before_change``), or is handed over (``RunStops.cancel_retries``): its
        slots that wait are decided now, under the definition they were handed over with, so
        that a run they start is one of those the change then stops from retrying."""
        for run in list(self._ends_awaited.get(key, {})):
            self._decide(key, run)

    def decide_closing(self) -> None:
        """Crontask begins to stop (``RunStops.close``, before it closes): a slot whose runs
        still hold its task gets the skip it would have had; one whose runs have gone is not
        started (nor recorded: the next start catches it up), as any slot from now on."""
        for key in [key for key in self._ends_awaited if self._active.get(key)]:
            self.decide_now(key)

    def left(self, active: ActiveRun) -> None:
        """``active`` holds its task no longer (let go, or its task ended): a decision waiting
        for it is taken once the others it waits for have left too."""
        if (leaving := self._leaving.pop(active, None)) is not None and not leaving.done():
            leaving.set_result(None)

    async def _after_ends(
        self, record: RunRecord, waiting: _Waiting, ends: set[asyncio.Future[None]]
    ) -> None:
        # Not when their tasks end: a run let go (a slow store) has left while its task waits.
        ended = asyncio.ensure_future(asyncio.wait(ends))
        try:
            wakers: set[asyncio.Future[Any]] = {waiting.woken, ended}
            timeout = LET_GO_AFTER + _MARGIN
            await asyncio.wait(wakers, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        self._decide(record.task, record.id)

    def _decide(self, key: str, run: str) -> None:
        by_run = self._ends_awaited.get(key, {})
        if (waiting := by_run.pop(run, None)) is None:
            return  # decided already (``decide_now``)
        if not by_run:
            self._ends_awaited.pop(key, None)
        if not waiting.woken.done():
            waiting.woken.set_result(None)
        self.fire(waiting.definition, waiting.scheduled_at, waiting.trigger, waited=True)


def _exited(active: ActiveRun) -> bool:
    """Whether ``active``'s work has ended, as far as the kernel knows: a command whose process
    has exited, whether or not the loop has heard of it yet, and no retry waiting."""
    attempt = active.attempt
    return not active.waiting and isinstance(attempt, CommandRun) and has_exited(attempt.pid)
