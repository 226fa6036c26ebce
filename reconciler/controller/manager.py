"""The manager: starts the parts of a running crontask in order and stops them in reverse.

Every long-lived part (file watch, git sync, the Kubernetes informer, the status writer, the
reconcile loop, the dispatcher, housekeeping, the HTTP server) is a :class:`Component`: one
coroutine that starts, says when it is ready, runs until its own stop event is set, then cleans
up and returns. The manager starts components one by one, each after the previous is ready
(the file watch is armed before the first pass reads, the informer has listed before it, ...),
and stops them in the reverse order, each after the later ones have finished: the HTTP server
goes first, the scheduler stops before the dispatcher lets running runs finish, and the status
writer flushes the final statuses last.

A component whose coroutine raises, or returns while it was not asked to stop, has failed: the
manager records which one and why, and asks the whole process to stop (``stopping``), as
controller-runtime's manager does when a runnable returns an error.

Stopping in order takes time (the HTTP server's graceful stop waits for the requests in
flight, up to seconds), and until its turn a component would go on taking work: a component
that takes work it must not take once the process stops (the runs: no new slot, no retry) is
:class:`Closing`, and hears it at once, when the stop is asked, before any component stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Protocol, runtime_checkable

from reconciler.aio import Ready as Ready  # re-exported: part of this contract

log = logging.getLogger("crontask.manager")


class Component(Protocol):
    """A long-lived part of the running process (see the module docstring)."""

    @property
    def name(self) -> str: ...

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        """Start, call ``ready()`` once serving, run until ``stop`` is set, clean up, return.
        Raising, or returning before ``stop``, is a failure."""
        ...


@runtime_checkable
class Closing(Protocol):
    """A component that must take no new work once the process begins to stop."""

    def closing(self) -> None:
        """The process begins to stop: take no new work from now on (the component stops
        later, in its turn). Called once, on the loop, as soon as the stop is asked."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    component: str
    error: str


class ComponentFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.component}: {failure.error}")
        self.failure = failure


class StopBeforeReady(Exception):
    """The process was asked to stop (a signal, another component's failure) while a component
    was starting: the rest of the start-up is not done."""

    def __init__(self, component: str) -> None:
        super().__init__(f"stopped while {component} was starting")
        self.component = component


@dataclasses.dataclass(eq=False)
class _Running:
    component: Component
    stop: asyncio.Event
    task: asyncio.Task[None]


class Manager:
    def __init__(self) -> None:
        self.stopping = asyncio.Event()  # set to stop the process (a signal, a failure)
        # Set by a second signal: no more grace for the runs, nor for their records' writes.
        self.hurry = asyncio.Event()
        self.failures: list[Failure] = []
        self._running: list[_Running] = []
        self._closed = False  # the Closing components have heard that the process stops

    async def start(self, component: Component) -> None:
        """Start ``component`` and wait until it is ready. Raises ComponentFailed if it ends
        before it is ready, StopBeforeReady if the process is asked to stop meanwhile (a first
        git clone from a remote that hangs must not hold SIGTERM back for the git timeout)."""
        ready = asyncio.Event()
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            component.run(ready.set, stop), name=component.name
        )
        running = _Running(component, stop, task)
        self._running.append(running)
        task.add_done_callback(lambda _: self._ended(running))
        became_ready = asyncio.ensure_future(ready.wait())
        stopping = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({became_ready, task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            became_ready.cancel()
            stopping.cancel()
        if ready.is_set():
            return
        if task.done():
            raise ComponentFailed(self._failure_of(running) or Failure(component.name, "ended"))
        raise StopBeforeReady(component.name)

    def signalled(self) -> None:
        """A stop signal: the first stops the process; the next cuts the runs' grace short (a
        second Ctrl-C, a second SIGTERM), as the person sending it means, and the wait for the
        run records the store has not taken (``RunStops.shutdown``)."""
        if self.stopping.is_set():
            if not self.hurry.is_set():
                log.warning(
                    "asked again to stop: running runs are stopped now, and run records the "
                    "store has not taken get a second more"
                )
            self.hurry.set()
        self._stop()

    async def wait(self) -> None:
        """Until something asks the process to stop."""
        await self.stopping.wait()

    async def shutdown(self) -> None:
        """Stop every component, the last started first, each after the later ones ended."""
        self._stop()
        for running in reversed(self._running):
            running.stop.set()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await running.task  # a failure was recorded by _ended
        self._running.clear()

    def _ended(self, running: _Running) -> None:
        if running.stop.is_set() and not _error_of(running.task):
            return  # a clean stop
        failure = self._failure_of(running) or Failure(running.component.name, "stopped by itself")
        self.failures.append(failure)
        log.error(
            "component failed; stopping",
            extra={"fields": {"component": failure.component, "error": failure.error}},
        )
        self._stop()

    def _stop(self) -> None:
        """The process is to stop: say so (``stopping``), and first tell the Closing
        components, the last started first, so that none takes new work while the others
        stop."""
        if not self._closed:
            self._closed = True
            for running in reversed(self._running):
                component = running.component
                if isinstance(component, Closing):
                    try:
                        component.closing()
                    except Exception:
                        log.exception(
                            "component failed to close",
                            extra={"fields": {"component": component.name}},
                        )
        self.stopping.set()

    @staticmethod
    def _failure_of(running: _Running) -> Failure | None:
        error = _error_of(running.task)
        return Failure(running.component.name, error) if error else None


def _error_of(task: asyncio.Task[None]) -> str | None:
    if not task.done():
        return None
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return (str(error) or type(error).__name__) if error is not None else None
