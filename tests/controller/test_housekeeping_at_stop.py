"""A stop never makes the Jobs' housekeeping log an error, nor fail its component.

The stop goes in the reverse order of the start: the runs (``components.Runs``) stop before the
Jobs supervisor, whose watch follows their Jobs until they end, and their stop closes the run
store's threads (``Recorder.close``). A housekeeping under way then met the closed pool: a call
raised ``RuntimeError: cannot schedule new futures after shutdown`` ("job housekeeping failed",
an error with a traceback, at every rolling update that hit it), and a call still queued for
the threads was cancelled, which ended the component as failed ("cancelled": exit status 1).

In process: the real manager, runs component, dispatcher and recorder, the real Job watch
against the Kubernetes emulator, a folder source read by the real reconciler. The run store
holds a call on an event, so that the recorder closes while the housekeeping waits for it; the
runs' stop then waits (on a condition, with a deadline) until the housekeeping is over, so the
supervisor's own stop is not set meanwhile, as when a rolling update stops a replica."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from reconciler.controller.components import Runs
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.jobs import JobSupervisor, JobSupport
from reconciler.controller.manager import Manager, Ready
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord
from reconciler.runner.base import Actions
from reconciler.runner.job import JobRunner
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.sources.kubernetes_jobs import JobWatch
from reconciler.store import MemoryRunStore
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POD = {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}
WAIT = 10.0


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()  # runs no Job: none is created here


class HeldRunning(MemoryRunStore):
    """A run store whose ``running`` waits for ``release`` while ``hold`` is set (in the
    recorder's thread); ``entered`` says that a call waits there."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.broken = False  # ``running`` fails, as a store with a real fault does
        self.entered = threading.Event()
        self.release = threading.Event()

    def running(self, task: str | None = None) -> list[RunRecord]:
        if self.broken:
            raise RuntimeError("the store is broken")
        if self.hold:
            self.entered.set()
            assert self.release.wait(30), "the test never released running()"
        return super().running(task)


class Supervisor(JobSupervisor):
    """The supervisor, saying when its component has ended (whichever way)."""

    ended = False

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        try:
            await super().run(ready, stop)
        finally:
            self.ended = True


class RunsThen(Runs):
    """The runs' component, which does ``then`` once its stop (the recorder closed) is over,
    before the manager goes on to stop the supervisor; with ``before``, once asked to stop and
    before its own stop (a run in its shutdown grace: the store still answers)."""

    def __init__(
        self, dispatcher: Dispatcher, then: Callable[[], Any], *, before: bool = False
    ) -> None:
        super().__init__(dispatcher, 0.0)
        self.then = then
        self.before = before

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        if self.before:
            held = asyncio.Event()

            async def grace() -> None:
                await stop.wait()
                await self.then()
                held.set()

            waiting = asyncio.ensure_future(grace())
            await super().run(ready, held)
            await waiting
            return
        await super().run(ready, stop)
        await self.then()


async def until(what: str, condition: Callable[[], object]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def write_task(folder: Path, name: str) -> None:
    job = {"spec": {"backoffLimit": 0, "template": {"spec": POD}}}
    document = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name},
        "spec": {"schedule": "0 0 1 1 *", "job": job},
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(document))


def supervised(
    api: Any, tasks: Path, store: MemoryRunStore, io_threads: int = 2
) -> tuple[Supervisor, Dispatcher, Reconciler]:
    """The Jobs supervisor of a dispatcher over ``store`` and of a reconciler reading ``tasks``,
    its Job watch on ``api`` (namespace ``default``)."""
    watch = JobWatch(api, ["default"])
    runner = JobRunner(watch, namespace="default")
    recorder = Recorder(store, io_threads=io_threads)
    dispatcher = Dispatcher(
        store, owner="h:1:x", clock=lambda: T0, actions=Actions([runner]), recorder=recorder
    )
    reconciler = Reconciler(
        [DirectorySource([tasks])], MemoryScheduler(lambda key, at: None, T0), dispatcher
    )
    supervisor = Supervisor(
        JobSupport(watch, runner), store=store, dispatcher=dispatcher, reconciler=reconciler
    )
    return supervisor, dispatcher, reconciler


def over(supervisor: Supervisor, caplog: pytest.LogCaptureFixture) -> bool:
    """The housekeeping under way at the stop is over: it said so (an error before the fix, a
    debug line after), or its component ended."""
    said = any("housekeeping" in r.getMessage() for r in caplog.records if r.name.endswith("jobs"))
    return said or supervisor.ended


def play(
    emulator: Emulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    *,
    io_threads: int = 2,
    queued: bool = False,
    broken: bool = False,
    fault_after_close: bool = False,
) -> Manager:
    """Start a supervisor and the runs under a manager, let a full pass wake the housekeeping,
    whose ``running`` (adoption) is held, or, with ``queued``, waits behind another call held
    in the store's only thread; stop while it waits; release the store once the recorder is
    closed. With ``broken``, the store fails the housekeeping's call before the stop instead.
    Returns the manager, stopped."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    write_task(tasks, "j1")
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")

    async def main() -> Manager:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        store = FaultyRunning()
        supervisor, dispatcher, reconciler = supervised(api, tasks, store, io_threads)
        recorder = dispatcher.recorder

        async def after_runs() -> None:
            store.fault = fault_after_close  # met by the call a thread took before the close
            store.release.set()  # the recorder is closed now
            await until("the housekeeping to be over", lambda: over(supervisor, caplog))

        manager = Manager()
        try:
            await manager.start(supervisor)
            await manager.start(RunsThen(dispatcher, after_runs))
            store.hold = not broken
            store.broken = broken
            if queued:  # the store's only thread is taken: the adoption's call waits in line
                blocker = asyncio.ensure_future(recorder.call(store.running))
                assert await asyncio.to_thread(store.entered.wait, WAIT)
                calls: list[object] = []
                call = recorder.call

                async def counted(fn: Callable[..., Any], *args: object) -> Any:
                    calls.append(fn)
                    return await call(fn, *args)

                recorder.call = counted  # type: ignore[method-assign]
            result = await reconciler.run_pass(None)  # a full pass: adopt, release, clean
            assert result.ok, result.error
            if queued:
                await until("the adoption's call to be queued", lambda: calls)
            elif broken:
                await until("the failure to be said", lambda: over(supervisor, caplog))
                store.broken = False  # the shutdown's own calls go through
            else:
                assert await asyncio.to_thread(store.entered.wait, WAIT)
            await asyncio.wait_for(manager.shutdown(), WAIT)
            if queued:
                await asyncio.wait({blocker}, timeout=WAIT)
                assert blocker.done()
        finally:
            store.release.set()
            await manager.shutdown()
            api.close()
        assert supervisor.ended
        return manager

    return asyncio.run(main())


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_housekeeping_that_meets_the_store_closed_by_the_stop_ends_quietly(
    quiet_emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The reviewer's traceback: adoption read the store, the stop closed it, the release's
    read raised RuntimeError (jobs.py ``release_jobs`` -> ``Recorder.call``)."""
    caplog.set_level(logging.DEBUG, logger="crontask")
    manager = play(quiet_emulator, tmp_path, caplog, io_threads=2, queued=False)
    assert manager.failures == []
    assert errors(caplog) == []
    said = [r for r in caplog.records if r.name == "crontask.jobs"]
    assert [(r.levelno, r.getMessage()) for r in said] == [
        (logging.DEBUG, "job housekeeping under way when crontask stopped: left for the next start")
    ]
    assert "StoreClosed" in said[0].__dict__["fields"]["error"]


def test_a_housekeeping_call_queued_when_the_stop_closes_the_store_fails_nothing(
    quiet_emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A call still queued for the store's threads is cancelled by the close: that is the end
    of the housekeeping, not a failure of its component (exit status 1)."""
    caplog.set_level(logging.DEBUG, logger="crontask")
    manager = play(quiet_emulator, tmp_path, caplog, io_threads=1, queued=True)
    assert manager.failures == []
    assert errors(caplog) == []
    said = [r for r in caplog.records if r.name == "crontask.jobs"]
    assert [r.levelno for r in said] == [logging.DEBUG]
    assert "CancelledError" in str(said[0].__dict__["fields"]["error"])


def test_a_housekeeping_failure_outside_a_stop_is_still_an_error(
    quiet_emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crontask")
    manager = play(quiet_emulator, tmp_path, caplog, broken=True)
    assert manager.failures == []
    assert errors(caplog) == ["job housekeeping failed; the next pass tries again"]
    failed = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert failed.exc_info is not None
    assert "the store is broken" in str(failed.exc_info[1])


class FaultyRunning(HeldRunning):
    """``running`` fails with a real fault (not the stop's closed pool) while ``fault``."""

    fault = False

    def running(self, task: str | None = None) -> list[RunRecord]:
        records = super().running(task)
        if self.fault:
            raise ValueError("a real store fault")
        return records


def test_in_the_shutdown_grace_the_jobs_of_ended_runs_are_still_cleaned_up(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    """The store answers until the runs' stop ends (their --shutdown-grace): a clean-up asked
    meanwhile, as a run's end asks it, is done, not left for a next start that may never come
    (a scale to 0)."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    write_task(tasks, "j1")
    kubeconfig = quiet_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    cleaned: list[object] = []

    async def main() -> None:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        store = MemoryRunStore()
        supervisor, dispatcher, reconciler = supervised(api, tasks, store)
        clean = supervisor.clean

        async def counted(keys: Collection[str] | None) -> int:
            cleaned.append(keys)
            return await clean(keys)

        supervisor.clean = counted  # type: ignore[method-assign]
        grace = asyncio.Event()
        manager = Manager()
        try:
            await manager.start(supervisor)
            await manager.start(RunsThen(dispatcher, grace.wait, before=True))
            assert (await reconciler.run_pass(None)).ok
            await until("the first housekeeping", lambda: cleaned)
            cleaned.clear()
            stopping = asyncio.ensure_future(manager.shutdown())
            await until("the stop to begin", manager.stopping.is_set)
            supervisor._keys.add("default/j1")  # a run of it ended in the grace (_after_run)
            supervisor._some.set()
            await until("the clean-up asked in the grace", lambda: cleaned)
            grace.set()
            await asyncio.wait_for(stopping, WAIT)
        finally:
            grace.set()
            await manager.shutdown()
            api.close()

    asyncio.run(main())
    assert cleaned == [{"default/j1"}]


def test_a_real_fault_met_while_stopping_is_still_an_error(
    quiet_emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the closed pool's errors end the housekeeping quietly: a store fault met after the
    stop began, the store's threads still open, is logged as it always was."""
    caplog.set_level(logging.DEBUG, logger="crontask")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    write_task(tasks, "j1")
    kubeconfig = quiet_emulator.write_kubeconfig(tmp_path / "kubeconfig")

    async def main() -> None:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        store = FaultyRunning()
        supervisor, dispatcher, reconciler = supervised(api, tasks, store)
        grace = asyncio.Event()
        manager = Manager()
        try:
            await manager.start(supervisor)
            await manager.start(RunsThen(dispatcher, grace.wait, before=True))
            store.hold = True
            assert (await reconciler.run_pass(None)).ok
            assert await asyncio.to_thread(store.entered.wait, WAIT)
            stopping = asyncio.ensure_future(manager.shutdown())
            await until("the stop to begin", manager.stopping.is_set)
            store.fault = True
            store.release.set()
            await until("the fault to be said", lambda: over(supervisor, caplog))
            store.fault = False
            grace.set()
            await asyncio.wait_for(stopping, WAIT)
        finally:
            grace.set()
            store.release.set()
            await manager.shutdown()
            api.close()

    asyncio.run(main())
    assert errors(caplog) == ["job housekeeping failed; the next pass tries again"]


def test_a_real_fault_of_a_call_under_way_at_the_close_is_still_an_error(
    quiet_emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A call a store thread took before the close and that fails after it with a fault of
    the store's own (not the closed pool's StoreClosed) is logged as always."""
    caplog.set_level(logging.DEBUG, logger="crontask")
    manager = play(quiet_emulator, tmp_path, caplog, fault_after_close=True)
    assert manager.failures == []
    assert errors(caplog) == ["job housekeeping failed; the next pass tries again"]
