"""Fire lateness: N jobs all due in the same second, crontask against plain APScheduler 3.11.

    python bench/lateness.py --worker MODE N [--store sqlite]   (one measurement; one JSON line)

Modes (each run in a fresh interpreter by ``bench/run.py``):

- ``handoff``: ``ApsScheduler`` (crontask's adapter: its own trigger over crontask's schedule
  engine, the hand-off executor) with a fire callback that does what ``crontask run``'s does
  before dispatch (look the task up in ``owned()``) and notes the time. Start = the callback,
  against the instant the scheduler means to call it: the slot less its lead (it hands slots
  over ahead of them).
- ``dispatch``: the same, through the real ``Dispatcher`` (policies, run record, claim in a
  ``MemoryRunStore`` through the recorder's thread pool, "run started"/"run finished" log lines
  formatted as ``crontask run`` does; the command's ``CommandRun`` with its environment is
  built) with a bench-local no-op ``Attempt`` run in place of the process. Start = the moment
  the attempt's ``run()`` begins, i.e. when a process would be spawned, after the store
  accepted the claim and not before the slot (a run decided ahead waits for it on a timer of
  the loop; a command waits in its spawner thread instead). This is the cheapest honest
  action: an HTTP call or ``true`` would add a request or a fork that is not crontask's own
  cost.
- ``aps-asyncio``: plain ``AsyncIOScheduler`` with its ``CronTrigger`` and default job settings
  (``misfire_grace_time=1``, ``coalesce=True``, ``max_instances=1``), an ``async def`` job that
  notes the time. Same process layout as crontask: one asyncio loop.
- ``aps-background``: plain ``BackgroundScheduler`` (thread pool of 10), a plain function job.
- ``command``: crontask's real ``Dispatcher`` + ``CommandRun`` running ``/bin/true`` (own
  process group, output pipe, exit learnt from a pidfd, the environment ``crontask run`` gives
  a command by default), ``MemoryRunStore`` (``--store sqlite``: the SQLite store of
  ``crontask run``, in a fresh file).
  Start = the process has been spawned; done = its record is final.
- ``aps-command``: plain ``AsyncIOScheduler`` + ``asyncio.create_subprocess_exec("/bin/true")``
  with the output captured, on one loop with asyncio's pidfd child watcher (Python 3.11's
  default parks a thread per child). Start = spawned; done = reaped.
- ``aps-bg-command``: plain ``BackgroundScheduler`` + ``subprocess.run(["/bin/true"])``.

Each job's slot is one instant T a few seconds after set-up (a daily six-field cron slot, so
each job fires exactly once). Lateness = start - T. CPU = process time (plus reaped children's
for command modes) from 0.3 s before T until every run has ended or the wait gave up. Lost =
N - runs started within T + 15 s (APScheduler drops a slot later than misfire_grace_time).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Json, asyncio_pidfd_watcher, emit, summary_ms

SETTLE_SECONDS = 15.0  # how long after T a run may still start before it counts as lost
WORKERS = (
    "handoff",
    "dispatch",
    "aps-asyncio",
    "aps-background",
    "command",
    "aps-command",
    "aps-bg-command",
)
ASYNC_MODES = {"handoff", "dispatch", "aps-asyncio", "command", "aps-command"}


@dataclasses.dataclass
class Tally:
    """Start (and end) times of the runs, against the common slot ``due``."""

    n: int
    due: float = 0.0
    lead: float = 0.0  # starts are timed against due - lead (the hand-off's own instant)
    starts: list[float] = dataclasses.field(default_factory=list)
    ends: list[float] = dataclasses.field(default_factory=list)
    all_started: threading.Event = dataclasses.field(default_factory=threading.Event)
    all_ended: threading.Event = dataclasses.field(default_factory=threading.Event)

    def started(self) -> None:
        self.starts.append(time.time() - (self.due - self.lead))
        if len(self.starts) >= self.n:
            self.all_started.set()

    def ended(self) -> None:
        self.ends.append(time.time() - self.due)
        if len(self.ends) >= self.n:
            self.all_ended.set()


def _cpu(children: bool) -> float:
    total = time.process_time()
    if children:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += usage.ru_utime + usage.ru_stime
    return total


# CPU is counted from this long before the slot, on every side: crontask hands a slot over up
# to AHEAD_MAX (1 s) before it, to decide and claim its run ahead (scheduling.apscheduler).
COUNTED_AHEAD = 1.3


def _slot(n: int) -> float:
    """The common slot: a whole second far enough ahead for set-up to finish (plus
    ``BENCH_EXTRA_SETUP_S`` seconds: time to attach a profiler such as py-spy)."""
    extra = float(os.environ.get("BENCH_EXTRA_SETUP_S", "0"))
    return float(math.ceil(time.time() + 1.0 + COUNTED_AHEAD + extra + n / 1000.0))


def _result(mode: str, tally: Tally, cpu: float, setup: float, extra: Json | None = None) -> Json:
    result: Json = {
        "mode": mode,
        "n": tally.n,
        "lateness": summary_ms(tally.starts),
        "lost": tally.n - len(tally.starts),
        "cpu_s": cpu,
        "setup_s": setup,
    }
    if tally.ends:
        result["done"] = summary_ms(tally.ends)
    result.update(extra or {})
    return result


def _configure_logging_like_crontask_run() -> None:
    """The log set-up of ``crontask run`` (logfmt on stderr, which the parent discards)."""
    from reconciler import logs

    logs.configure("info", "logfmt")


# -- crontask ----------------------------------------------------------------------------------


def _definitions(n: int, due: float, command: bool) -> list[Any]:
    from reconciler.core.desired import Definition, Location
    from reconciler.core.model import CronTask

    at = datetime.fromtimestamp(due, UTC)
    schedule = f"{at.second} {at.minute} {at.hour} * * *"
    found = []
    for i in range(n):
        task = CronTask.model_validate(
            {
                "apiVersion": "crontask.dev/v1alpha1",
                "kind": "CronTask",
                "metadata": {"name": f"job-{i:05d}", "namespace": "bench"},
                "spec": {
                    "schedule": schedule,
                    "command": {"args": ["/bin/true"] if command else ["noop"]},
                },
            }
        )
        found.append(Definition.of(task, Location("bench", f"job-{i}", 1, 1)))
    return found


async def _crontask(mode: str, n: int, store_dir: Path | None) -> Json:
    from reconciler.controller.dispatch import Dispatcher
    from reconciler.core.desired import Definition
    from reconciler.core.plan import Operation, Step
    from reconciler.core.runs import RunRecord, RunStatus
    from reconciler.core.timing import AHEAD_MAX
    from reconciler.runner import process
    from reconciler.runner.base import Actions, Attempt, Outcome
    from reconciler.runner.command_runner import CommandRunner
    from reconciler.runner.environment import task_environment
    from reconciler.scheduling.apscheduler import AHEAD_BASE, AHEAD_PER_RUN, ApsScheduler
    from reconciler.store import open_store, sqlite_url
    from reconciler.store.memory import MemoryRunStore

    tally = Tally(n)
    command = mode == "command"
    if mode != "handoff":
        _configure_logging_like_crontask_run()

    class NoopAttempt:
        """Succeeds at once: what is left of a run when the action costs nothing."""

        async def run(self) -> Outcome:
            tally.started()
            return Outcome(RunStatus.SUCCEEDED, 0, None, "exit code 0", "")

        def stop(self, reason: str) -> None:
            pass

    class NotingSpawner(process.Spawner):
        """crontask's spawner; notes the instant each process has been started, in the
        spawner's thread, right after the kernel returned its pid."""

        def start(self, *args: Any) -> process.Started:
            started = super().start(*args)
            tally.started()
            return started

    if command:
        process._spawner = NotingSpawner()

    class BenchAction:
        """The real action is built (environment and all), then swapped for the no-op
        unless commands are measured."""

        field = "command"

        def __init__(self, runner: CommandRunner) -> None:
            self.runner = runner

        def attempt(self, definition: Definition, record: RunRecord) -> Attempt:
            real = self.runner.attempt(definition, record)
            return real if command else NoopAttempt()

    # Commands start from the environment `crontask run` gives them by default (--task-env).
    task_env = task_environment(os.environ, "minimal")
    # The in-memory store measures crontask, not a disk; --store sqlite gives the store
    # `crontask run` uses by default.
    store = open_store(sqlite_url(store_dir), writer=True) if store_dir else MemoryRunStore()
    actions = Actions([BenchAction(CommandRunner(task_env))])
    dispatcher = Dispatcher(store, owner="bench:1:x", actions=actions)

    def on_final(record: RunRecord) -> None:
        if record.status is not RunStatus.RUNNING:
            tally.ended()

    if command:
        dispatcher.subscribe(on_final)

    def on_fire(key: str, at: datetime) -> None:
        definition = scheduler.owned().get(key)
        if definition is None:
            return
        if mode == "handoff":
            tally.started()
        else:
            dispatcher.due(definition, at)

    scheduler = ApsScheduler(on_fire)
    setup_started = time.perf_counter()
    tally.due = _slot(n)
    if mode == "handoff":
        # The scheduler means to hand the slots over ahead of the slot, by its lead: the
        # hand-off is timed against that instant.
        tally.lead = min(AHEAD_MAX, AHEAD_BASE + AHEAD_PER_RUN * n)
    definitions = _definitions(n, tally.due, command)
    scheduler.start()
    for definition in definitions:
        scheduler.apply(Step(Operation.ADD, definition.key, definition, None))
    await asyncio.sleep(0)  # let the scheduler take the wake-ups
    # As `crontask run` does after its first pass: what the set-up built lives as long as the
    # process, and the collector need not walk it again.
    gc.freeze()
    setup = time.perf_counter() - setup_started
    try:
        return await _measure(
            mode,
            tally,
            setup,
            dispatcher.drain if mode != "handoff" else None,
            scheduler.shutdown,
            command,
        )
    finally:
        store.close()


async def _measure(
    mode: str,
    tally: Tally,
    setup: float,
    drain: Callable[..., Any] | None,
    shutdown: Callable[[], None],
    children: bool,
) -> Json:
    if time.time() > tally.due - COUNTED_AHEAD - 0.2:
        return {"mode": mode, "n": tally.n, "error": "set-up overran the slot"}
    await asyncio.sleep(tally.due - COUNTED_AHEAD - time.time())
    cpu0 = _cpu(children)
    waiting = asyncio.get_running_loop().run_in_executor(
        None, tally.all_started.wait, SETTLE_SECONDS + 0.3
    )
    await waiting
    if drain is not None:
        await drain(SETTLE_SECONDS)
    if children:
        await asyncio.get_running_loop().run_in_executor(None, tally.all_ended.wait, SETTLE_SECONDS)
    cpu = _cpu(children) - cpu0
    shutdown()
    return _result(mode, tally, cpu, setup)


# -- plain APScheduler -------------------------------------------------------------------------


async def _aps_asyncio(mode: str, n: int) -> Json:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    tally = Tally(n)
    command = mode == "aps-command"
    if command:
        asyncio_pidfd_watcher(asyncio.get_running_loop())

    async def job() -> None:
        tally.started()

    async def command_job() -> None:
        process = await asyncio.create_subprocess_exec(
            "/bin/true",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        tally.started()
        await process.communicate()
        tally.ended()

    scheduler = AsyncIOScheduler(timezone=UTC)
    setup_started = time.perf_counter()
    tally.due = _slot(n)
    at = datetime.fromtimestamp(tally.due, UTC)
    scheduler.start()
    for i in range(n):
        trigger = CronTrigger(second=at.second, minute=at.minute, hour=at.hour, timezone=UTC)
        scheduler.add_job(command_job if command else job, trigger, id=f"job-{i}")
    await asyncio.sleep(0)
    setup = time.perf_counter() - setup_started
    return await _measure(mode, tally, setup, None, lambda: scheduler.shutdown(wait=False), command)


def _aps_background(mode: str, n: int) -> Json:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    tally = Tally(n)
    command = mode == "aps-bg-command"

    def job() -> None:
        tally.started()

    def command_job() -> None:
        with subprocess.Popen(
            ["/bin/true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as process:
            tally.started()
            process.communicate()
        tally.ended()

    scheduler = BackgroundScheduler(timezone=UTC)
    setup_started = time.perf_counter()
    tally.due = _slot(n)
    at = datetime.fromtimestamp(tally.due, UTC)
    scheduler.start()
    for i in range(n):
        trigger = CronTrigger(second=at.second, minute=at.minute, hour=at.hour, timezone=UTC)
        scheduler.add_job(command_job if command else job, trigger, id=f"job-{i}")
    setup = time.perf_counter() - setup_started
    if time.time() > tally.due - 0.5:
        return {"mode": mode, "n": n, "error": "set-up overran the slot"}
    time.sleep(max(0.0, tally.due - 0.3 - time.time()))
    cpu0 = _cpu(command)
    tally.all_started.wait(SETTLE_SECONDS + 0.3)
    if command:
        tally.all_ended.wait(SETTLE_SECONDS)
    time.sleep(0.05)  # the last job's bookkeeping
    cpu = _cpu(command) - cpu0
    scheduler.shutdown(wait=False)
    return _result(mode, tally, cpu, setup)


def measure(mode: str, n: int, store: str = "memory") -> Json:
    if mode in ("handoff", "dispatch", "command"):
        if store == "memory":
            return asyncio.run(_crontask(mode, n, None))
        with tempfile.TemporaryDirectory(prefix="crontask-bench-") as state:
            return asyncio.run(_crontask(mode, n, Path(state)))
    if mode in ("aps-asyncio", "aps-command"):
        return asyncio.run(_aps_asyncio(mode, n))
    return _aps_background(mode, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    parser.add_argument("mode", choices=WORKERS)
    parser.add_argument("n", type=int)
    parser.add_argument(
        "--store",
        choices=["memory", "sqlite"],
        default="memory",
        help="crontask modes: the run store (sqlite: a fresh file, as `crontask run` uses)",
    )
    args = parser.parse_args(argv)
    from reconciler.host import raise_open_files

    raise_open_files()  # as `crontask run` does at start: its bound on runs at once follows it
    os.environ.setdefault("PYTHONHASHSEED", "0")
    emit(measure(args.mode, args.n, args.store))
    return 0


if __name__ == "__main__":
    sys.exit(main())
