"""Once crontask is asked to stop, no run starts: the components stop one by one, the HTTP
server's graceful stop can take seconds, and until the runs' turn the scheduler still hands
slots over and retries come due. The manager tells the Closing components at once; the
dispatcher, told, starts nothing more."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.manager import Manager, Ready
from reconciler.core.runs import RunStatus, Trigger, run_id
from reconciler.runner.memory import ScriptedAction
from tests.controller.test_policies import FAILED, KEY, T0, attempts, play, task, until
from tests.helpers import definition


class Part:
    """A component that logs its close and stop; ``release`` holds its stop (a graceful stop
    that waits for a request in flight)."""

    def __init__(self, name: str, log: list[str], release: asyncio.Event | None = None) -> None:
        self.name = name
        self.log = log
        self.release = release

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        await stop.wait()
        if self.release is not None:
            await self.release.wait()
        self.log.append(f"stop {self.name}")


class ClosingPart(Part):
    def closing(self) -> None:
        self.log.append(f"close {self.name}")


class Runs:
    """The runs as a component (as ``components.Runs``), Closing: the dispatcher is closed."""

    name = "runs"

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def closing(self) -> None:
        self.dispatcher.close()

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        ready()
        await stop.wait()
        await self.dispatcher.shutdown(5)


def test_closing_components_hear_the_stop_at_once_before_any_component_stops() -> None:
    log: list[str] = []

    async def main() -> None:
        manager = Manager()
        release = asyncio.Event()
        for part in (ClosingPart("writer", log), ClosingPart("runs", log), Part("http", log)):
            await manager.start(part)
        await manager.start(Part("slow", log, release))
        manager.signalled()
        assert log == ["close runs", "close writer"]  # at once, the last started first
        stopping = asyncio.ensure_future(manager.shutdown())
        await asyncio.sleep(0.01)
        assert log == ["close runs", "close writer"]  # "slow" still stopping
        manager.signalled()  # a second signal: nobody is told twice
        release.set()
        await stopping

    asyncio.run(main())
    assert log == [
        "close runs",
        "close writer",
        "stop slow",
        "stop http",
        "stop runs",
        "stop writer",
    ]


def test_a_failure_closes_the_closing_components_too() -> None:
    log: list[str] = []

    class Failing:
        name = "failing"

        async def run(self, ready: Ready, stop: asyncio.Event) -> None:
            ready()
            await asyncio.sleep(0)
            raise RuntimeError("broken")

    async def main() -> None:
        manager = Manager()
        await manager.start(ClosingPart("runs", log))
        await manager.start(Failing())
        await manager.wait()
        assert log == ["close runs"]
        await manager.shutdown()

    asyncio.run(main())
    assert log == ["close runs", "stop runs"]


def test_no_slot_and_no_retry_starts_while_the_later_components_stop() -> None:
    job = task(retry={"limit": 2, "backoffSeconds": 0})
    later = T0 + timedelta(minutes=1)

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        manager = Manager()
        release = asyncio.Event()
        await manager.start(Runs(d))
        await manager.start(Part("http", [], release))  # its graceful stop waits
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        manager.signalled()
        stopping = asyncio.ensure_future(manager.shutdown())
        # While the HTTP server stops: the attempt fails (its retry is due at once), and the
        # scheduler, not stopped yet, hands the next slot over.
        action.attempts[0].finish(FAILED)
        record = d.fire(job, later)
        assert (record.status, record.reason) == (RunStatus.SKIPPED, "NotStarted")
        assert "crontask is stopping" in (record.message or "")
        await until(lambda: d.active_count() == 0)
        assert len(action.attempts) == 1
        release.set()
        await stopping

    store = play(body)
    assert attempts(store) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.INTERRUPTED, "Shutdown", Trigger.RETRY),
    ]
    assert store.get(run_id(KEY, later)) is None  # not recorded: a restart catches it up


def test_closing_cancels_the_retries_that_wait_and_lets_running_runs_go_on() -> None:
    other = definition("other")

    async def body(d: Dispatcher, action: ScriptedAction) -> None:
        d.fire(task(retry={"limit": 2, "backoffSeconds": 3600}), T0)
        await until(lambda: len(action.running()) == 1)
        d.fire(other, T0)
        await until(lambda: len(action.running()) == 2)
        action.attempts[0].finish(FAILED)
        await until(lambda: bool(d.waiting(KEY)))
        d.close()
        await until(lambda: not d.waiting(KEY))  # the retry does not wait for its backoff
        assert len(action.running()) == 1  # the other run goes on, until shutdown's grace
        action.attempts[1].finish()
        assert await d.drain(5)

    store = play(body)
    assert attempts(store) == [
        (1, RunStatus.FAILED, "NonZeroExit", Trigger.SCHEDULE),
        (2, RunStatus.INTERRUPTED, "Shutdown", Trigger.RETRY),
    ]
    ran = store.get(run_id(other.key, T0))
    assert ran is not None
    assert ran.status is RunStatus.SUCCEEDED
