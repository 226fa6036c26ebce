"""A command's process that SIGKILL does not end (one in an uninterruptible sleep: a hung NFS
mount, a stuck disk) must not hold its run for as long as it sleeps: the run would stay
``running``, its task's later slots skipped under ``Forbid``, and crontask's stop would wait
for it however long its graces are. Once the kill rounds are over the run ends, saying that
the process was left running.

A real process that outlives SIGKILL: one held by a tracer at its exit (``PTRACE_EVENT_EXIT``),
which the kernel does not let go of until the tracer does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner import command
from reconciler.runner.base import Outcome
from reconciler.runner.command import CommandRun

pytestmark = pytest.mark.slow  # the kill rounds take about a second

# Holds the process its argument names at its exit until its stdin closes (30 s at most).
_TRACER = """
import ctypes, select, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_O_TRACEEXIT = 0x4206, 0x40
if libc.ptrace(PTRACE_SEIZE, int(sys.argv[1]), None, PTRACE_O_TRACEEXIT) != 0:
    print("cannot trace", flush=True)
    sys.exit()
print("seized", flush=True)
select.select([sys.stdin], [], [], 30)
"""

ENV = {"PATH": os.environ.get("PATH", os.defpath)}


@contextlib.asynccontextmanager
async def _held(
    tid: int | str, run: CommandRun, running: asyncio.Future[Outcome]
) -> AsyncIterator[None]:
    """A tracer holds the thread ``tid`` (a process's main thread: its pid) at its exit for the
    block's time, then lets it go; the test is skipped where no process may trace another."""
    tracer = subprocess.Popen(
        [sys.executable, "-c", _TRACER, str(tid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert tracer.stdout is not None
    assert tracer.stdin is not None
    try:
        if await asyncio.to_thread(tracer.stdout.readline) != b"seized\n":
            run.stop("test over")
            await running
            pytest.skip("this host does not let a process trace another")
        yield
    finally:
        tracer.stdin.close()  # lets it go: the process ends, and is reaped
        await asyncio.to_thread(tracer.wait)
        tracer.stdout.close()


async def _run_held(stop: str | None) -> tuple[Outcome, int]:
    """A command held at its exit by a tracer, stopped (``stop``) or timed out."""
    run = CommandRun(
        ["sh", "-c", "exec sleep 1000 >/dev/null 2>&1"],
        env=ENV,
        timeout=None if stop else 0.5,
        kill_grace=0.1,
    )
    running = asyncio.ensure_future(run.run())
    await run.started.wait()
    assert run.pid is not None
    async with _held(run.pid, run, running):
        if stop:
            run.stop(stop)
        outcome = await running  # the tracer holds the process 30 s at most
        # Still there, held: the run ended without it.
        with open(f"/proc/{run.pid}/stat", "rb") as f:
            assert f.read().split(b") ")[1][:1] in (b"t", b"T", b"D")
        return outcome, run.pid


def test_a_stopped_run_whose_process_outlives_sigkill_ends_all_the_same() -> None:
    outcome, pid = asyncio.run(_run_held("Shutdown"))
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "Shutdown"
    assert outcome.exit_code is None
    assert outcome.message == (
        "stopped: Shutdown (SIGKILL after 0.1s grace period); its process outlived SIGKILL"
        f" (an uninterruptible sleep?) and is left running: pid {pid}"
    )


def test_a_timed_out_run_whose_process_outlives_sigkill_ends_all_the_same() -> None:
    outcome, pid = asyncio.run(_run_held(None))
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.exit_code is None
    assert outcome.message.endswith(f"is left running: pid {pid}")


def test_a_process_on_its_way_out_is_waited_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One that is exiting (a large memory being freed can take longer than the kill rounds)
    ends soon: its run waits for it, and its exit code is known."""
    monkeypatch.setattr(command, "held", lambda pid: False)

    async def main() -> tuple[Outcome, bool]:
        run = CommandRun(
            ["sh", "-c", "exec sleep 1000 >/dev/null 2>&1"], env=ENV, timeout=None, kill_grace=0.1
        )
        running = asyncio.ensure_future(run.run())
        await run.started.wait()
        assert run.pid is not None
        async with _held(run.pid, run, running):
            run.stop("Shutdown")
            async with asyncio.timeout(30):
                while "outlived SIGKILL" not in caplog.text:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0)  # the run's supervisor goes on, if it would
            still_running = not running.done()
        return await running, still_running  # the exit came as the block ended

    outcome, still_running = asyncio.run(main())
    assert still_running
    assert outcome.exit_code == 137
    assert outcome.message == "stopped: Shutdown (SIGKILL after 0.1s grace period)"


# A program of two threads: the second writes its thread id to $TIDFILE, then both sleep.
_THREADED = """
import os, threading, time
def second():
    with open(os.environ["TIDFILE"], "w") as f:
        f.write(str(threading.get_native_id()))
    time.sleep(1000)
threading.Thread(target=second).start()
time.sleep(1000)
"""


def test_a_run_whose_thread_outlives_sigkill_ends_all_the_same(tmp_path: Path) -> None:
    """Most programs have threads (a JVM, a Go program): one held in an uninterruptible sleep
    outlives SIGKILL while its main thread exits, a zombie the kernel reports only once every
    thread is gone. The run ends all the same, saying so."""
    tidfile = tmp_path / "tid"

    async def main() -> tuple[Outcome, int]:
        run = CommandRun(
            [sys.executable, "-c", _THREADED],
            env={**ENV, "TIDFILE": str(tidfile)},
            timeout=None,
            kill_grace=0.1,
        )
        running = asyncio.ensure_future(run.run())
        await run.started.wait()
        assert run.pid is not None
        async with asyncio.timeout(30):
            while not (tidfile.exists() and tidfile.read_text()):
                await asyncio.sleep(0.01)
        async with _held(tidfile.read_text(), run, running):
            run.stop("Shutdown")
            outcome = await running  # the tracer holds the thread 30 s at most
            # Its thread still there, held: the run ended without it.
            with open(f"/proc/{run.pid}/task/{tidfile.read_text()}/stat", "rb") as f:
                assert f.read().split(b") ")[1][:1] in (b"t", b"T", b"D")
            return outcome, run.pid

    outcome, pid = asyncio.run(main())
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "Shutdown"
    assert outcome.exit_code is None
    assert outcome.message == (
        "stopped: Shutdown (SIGKILL after 0.1s grace period); its process outlived SIGKILL"
        f" (an uninterruptible sleep?) and is left running: pid {pid}"
    )
