"""A start that does not return: its program or working directory on a file system that does not
answer (a hung NFS or FUSE mount) holds the spawner's thread in the kernel for as long as the
mount hangs. The run still ends at its deadline (or soon after a stop), nothing is started for it
after that (a process that comes back all the same is killed at once), other runs still start,
and neither shutdown nor the interpreter's exit waits for it.

The hang is the spawner's own ``start`` held on an event (``_HungStarts``), so these run
anywhere; one test hangs a real exec on a FUSE mount that never answers (root only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner import pool, process
from reconciler.runner.base import Outcome
from reconciler.runner.command import CommandRun
from reconciler.runner.process import Spawner
from tests.helpers import wait_for
from tests.runner.test_process import _HANG

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}
HUNG = "/mnt/hung/program"  # what _HungStarts holds


class _HungStarts:
    """The spawner's starts of ``HUNG`` do not return until ``release`` is set (20 s at most,
    so that a test that fails ends), then start ``sleep 30`` in its place (a process that comes
    back late). ``entered`` counts the starts under way; other programs start as they would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, spawner: Spawner) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        real_start = spawner.start

        def start(
            args: Sequence[str], env: dict[str, str], cwd: str | None, output_fd: int
        ) -> process.Started:
            if args[0] == HUNG:
                self.entered.release()
                self.release.wait(20)
                args = ["sleep", "30"]
            return real_start(args, env, cwd, output_fd)

        monkeypatch.setattr(spawner, "start", start)
        monkeypatch.setattr(process, "_spawner", spawner)

    async def under_way(self) -> None:
        assert await asyncio.to_thread(self.entered.acquire, True, 5), "the start never began"


def _late_kill(caplog: pytest.LogCaptureFixture) -> int | None:
    """The pid of the process that came back late and was killed, once the log says so."""
    for record in caplog.records:
        if "killed at once" in record.getMessage():
            pid: int = record.fields["pid"]  # type: ignore[attr-defined]
            return pid
    return None


def test_a_start_that_does_not_return_times_the_run_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The deadline runs from the run's start, not from its process's: a start that has not
    returned by then ends the run as timed out. The process that comes back later is killed at
    once (its session), and reaped: nothing runs for a run recorded as ended."""
    hung = _HungStarts(monkeypatch, Spawner())

    async def scenario() -> Outcome:
        try:
            return await asyncio.wait_for(CommandRun([HUNG], env=ENV, timeout=0.3).run(), 5)
        finally:
            hung.release.set()

    with caplog.at_level(logging.WARNING, logger="crontask.runner"):
        outcome = asyncio.run(scenario())
        assert outcome.status is RunStatus.TIMED_OUT
        assert outcome.reason == "DeadlineExceeded"
        assert (outcome.exit_code, outcome.pid) == (None, None)
        assert outcome.message == (
            f"timed out after 0.3s before its process started: starting {HUNG} had not returned"
            " (a host too busy to start processes, or a file system that does not answer?); it"
            " is killed if it starts later"
        )
        pid = wait_for("the late process to be killed", lambda: _late_kill(caplog), 10)
    wait_for("the late process to be reaped", lambda: not Path(f"/proc/{pid}").exists(), 10)


def test_a_start_that_does_not_return_holds_up_no_other_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A start stuck in the only thread of the pool (a run with no timeout, which waits for it)
    does not keep the next run from starting: another thread takes the stuck one's place."""
    spawner = Spawner(threads=1)
    spawner.stuck_after = 0.05
    hung = _HungStarts(monkeypatch, spawner)

    async def scenario() -> tuple[Outcome, Outcome]:
        stuck = CommandRun([HUNG], env=ENV, kill_grace=0.1)
        waiting = asyncio.ensure_future(stuck.run())
        try:
            await hung.under_way()
            other = await asyncio.wait_for(CommandRun(["true"], env=ENV).run(), 5)
            stuck.stop("TaskRemoved")
            return other, await asyncio.wait_for(waiting, 5)
        finally:
            hung.release.set()

    other, stuck = asyncio.run(scenario())
    assert other.status is RunStatus.SUCCEEDED
    assert stuck.reason == "TaskRemoved"


def test_a_stopped_run_does_not_wait_for_a_start_that_does_not_return(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shutdown stops the run: its start is waited for as long as a process is given to end
    (``kill_grace``), then given up, and the record says why."""
    hung = _HungStarts(monkeypatch, Spawner())

    async def scenario() -> Outcome:
        command = CommandRun([HUNG], env=ENV, kill_grace=0.2)
        waiting = asyncio.ensure_future(command.run())
        try:
            await hung.under_way()
            command.stop("Shutdown")
            return await asyncio.wait_for(waiting, 5)
        finally:
            hung.release.set()

    outcome = asyncio.run(scenario())
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "Shutdown"
    assert outcome.message == (
        f"stopped: Shutdown, before its process started: starting {HUNG} had not returned"
        " (a host too busy to start processes, or a file system that does not answer?); it is"
        " killed if it starts later"
    )


def test_a_start_that_no_thread_took_in_time_never_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run whose start still waits for a thread at its deadline times out, and no thread
    starts it later."""
    spawner = Spawner(threads=1)
    spawner.stuck_after = 60.0  # the stuck start keeps its thread
    hung = _HungStarts(monkeypatch, spawner)
    marker = tmp_path / "started"

    async def scenario() -> Outcome:
        stuck = CommandRun([HUNG], env=ENV, kill_grace=0.1)
        waiting = asyncio.ensure_future(stuck.run())
        try:
            await hung.under_way()
            queued = CommandRun(["touch", str(marker)], env=ENV, timeout=0.2)
            outcome = await asyncio.wait_for(queued.run(), 5)
            stuck.stop("TaskRemoved")
            await asyncio.wait_for(waiting, 5)
            return outcome
        finally:
            hung.release.set()

    outcome = asyncio.run(scenario())
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.message == (
        "timed out after 0.2s before its process started: no thread was free to start it"
    )
    spawner._executor().shutdown(wait=True)  # every start it had queued has been taken
    assert not marker.exists()


def test_stuck_starts_cost_a_bounded_number_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each stuck start gets a thread in its place up to ``STUCK_MAX``; past it, a pool whose
    every thread is stuck fails its starts at once instead of queueing them behind the stuck
    ones. Once the starts come back, the pool starts again, with its own number of threads."""
    monkeypatch.setattr(pool, "STUCK_MAX", 2)
    spawner = Spawner(threads=1)
    spawner.stuck_after = 0.01
    hung = _HungStarts(monkeypatch, spawner)
    stuck = [spawner.submit([HUNG], ENV, None) for _ in range(3)]
    try:
        for _ in stuck:  # each one in a thread of its own: 1, and 2 in place of stuck ones
            assert hung.entered.acquire(timeout=5), "a stuck start held up the next"
        waiting = spawner.submit(["true"], ENV, None)
        with pytest.raises(RuntimeError, match="every thread that starts processes is stuck"):
            waiting.result(timeout=5)
        with pytest.raises(RuntimeError, match=r"stuck in a start that does not return \(3 of"):
            spawner.submit(["true"], ENV, None)
        assert len(spawner._executor()._workers) == 3
    finally:
        hung.release.set()
    for future in stuck:
        (pid, _), read_fd, _ = future.result(timeout=10)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read_fd)
    (pid, _), read_fd, _ = spawner.submit(["true"], ENV, None).result(timeout=10)
    os.waitpid(pid, 0)
    os.close(read_fd)
    wait_for("the threads in place of stuck ones to end", lambda: _workers(spawner) == 1, 10)


def _workers(spawner: Spawner) -> int:
    return len(spawner._executor()._workers)


_EXIT_WITH_A_STUCK_START = """
import threading
from reconciler.runner.process import Spawner

spawner = Spawner(threads=1)
entered = threading.Event()

def start(*args):
    entered.set()
    threading.Event().wait()  # never returns

spawner.start = start
spawner.submit(["hung"], {}, None)
assert entered.wait(10)
print("stuck", flush=True)
"""


def test_the_interpreter_exits_with_a_start_stuck() -> None:
    """The spawner's threads are not joined at exit: one stuck in a start does not keep
    crontask from ending once it has stopped."""
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_WITH_A_STUCK_START],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "stuck\n"), done.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/fuse"), reason="a FUSE mount needs root"
)
def test_a_program_on_a_hung_mount_times_out_and_never_runs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A real exec that waits on a FUSE mount that never answers: the run times out, and its
    clone, stuck before its exec, is killed there, so the start comes back while the mount
    still hangs (the thread is free again) and nothing of it is left."""
    monkeypatch.setattr(process, "_spawner", Spawner())
    hung = tmp_path / "hung"
    hung.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HANG, str(hung)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    program = str(hung / "program")
    try:
        if holder.stdout.readline() != "mounted\n":
            pytest.skip("FUSE cannot be mounted here")
        with caplog.at_level(logging.WARNING, logger="crontask.runner"):
            run = CommandRun([program], env=ENV, timeout=0.5).run()
            outcome = asyncio.run(asyncio.wait_for(run, 10))
            assert outcome.status is RunStatus.TIMED_OUT
            assert f"starting {program} had not returned" in outcome.message
            pid = wait_for("the stuck start to come back", lambda: _late_kill(caplog), 10)
        assert holder.poll() is None  # the mount still hangs
        wait_for("its process to be reaped", lambda: not Path(f"/proc/{pid}").exists(), 10)
    finally:
        holder.communicate(timeout=30)  # its end aborts the mount
        subprocess.run(["umount", "-l", str(hung)], check=False)
