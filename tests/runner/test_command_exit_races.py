"""CommandRun when its loop is late, and a second stop signal after the main process exited:
real processes, and a loop made late the honest way (a callback that blocks it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.command import CommandRun
from tests.runner.test_command import ENV, alive, arun


def _block_until_exited(pid: int) -> None:
    """Hold the loop's thread (a long callback, a GC pause, a starved host) until ``pid`` has
    exited, without reaping it: the loop hears of the exit only when it runs again."""
    with contextlib.suppress(ChildProcessError):  # reaped already (no pidfd: a thread waits)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


async def _until(what: str, condition: Callable[[], bool], bound: float = 20.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


def test_an_exit_heard_in_the_same_pass_as_the_deadline_is_the_outcome() -> None:
    """The command exits in time, but the loop, late, handles its exit and its deadline in one
    pass: the exit is the outcome (no timeout, hence no retry running the work again)."""

    async def main() -> Outcome:
        run = CommandRun(["sh", "-c", "echo done"], env=ENV, timeout=0.5, kill_grace=5)
        task = asyncio.create_task(run.run())
        await run.started.wait()
        assert run.pid is not None
        _block_until_exited(run.pid)
        # The deadline was set before the start: 0.5 s from now it has passed for sure.
        time.sleep(0.55)
        return await task

    outcome = arun(main())
    assert outcome.status is RunStatus.SUCCEEDED, outcome
    assert outcome.exit_code == 0
    assert outcome.output == "done\n"


def test_a_stop_after_an_exit_the_loop_has_not_heard_leaves_that_exit_the_outcome() -> None:
    """A stop (Replace, shutdown) that comes after the process exited, before the loop
    handled the exit: the run ended on its own, and says so."""

    async def main() -> Outcome:
        run = CommandRun(["sh", "-c", "exit 0"], env=ENV, kill_grace=5)
        task = asyncio.create_task(run.run())
        await run.started.wait()
        assert run.pid is not None
        _block_until_exited(run.pid)
        run.stop("Replaced")
        return await task

    outcome = arun(main())
    assert outcome.status is RunStatus.SUCCEEDED, outcome
    assert outcome.reason is None


def test_kill_now_kills_what_ignores_sigterm_after_the_main_process_exited(
    tmp_path: Path,
) -> None:
    """A second stop signal: the main process died of the first SIGTERM, but what it left in
    its session ignores SIGTERM; kill_now kills it at once, not after the kill grace."""
    pid_file = tmp_path / "leftover"
    leftover_script = 'trap "" TERM; echo $$ > "$0.tmp"; mv "$0.tmp" "$0"; exec sleep 600'
    script = f"sh -c '{leftover_script}' \"$0\" & wait"

    async def main() -> tuple[Outcome, bool, int]:
        run = CommandRun(["sh", "-c", script, str(pid_file)], env=ENV, kill_grace=600)
        task = asyncio.create_task(run.run())
        await run.started.wait()
        main_pid = run.pid
        assert main_pid is not None
        try:
            await _until("the leftover ignores SIGTERM", pid_file.exists)
            leftover = int(pid_file.read_text())
            run.stop("Shutdown")
            # The case at hand: the main process is reaped, its session still terminated.
            await _until("the main process is reaped", lambda: run._exited)
            assert alive(leftover)
            killed = run.kill_now(fresh_since=time.monotonic())
            # A bound far below the kill grace, not a measure of speed.
            done, _ = await asyncio.wait({task}, timeout=20)
            assert done, "the leftover was waited for the whole kill grace"
            return task.result(), killed, leftover
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(main_pid, signal.SIGKILL)
            await asyncio.wait({task})

    outcome, killed, leftover = arun(main())
    assert killed  # the record gets the note that it was hurried
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "Shutdown"
    assert "SIGKILL after" not in outcome.message
    assert not alive(leftover)
