"""A stopped process (SIGSTOP, SIGTSTP) keeps a SIGTERM pending until it is continued: the run
sends SIGCONT after each SIGTERM, so a stopped command still gets its graceful end instead of
a SIGKILL after the whole kill grace. Real processes, no mocks; each waits on what it can see
(a pid file, the process's state in /proc) with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.command import CommandRun

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}
# Long enough that a run which waited it out is plainly told apart (its record says SIGKILL),
# short enough that the tests fail in reasonable time on the code they were written against.
GRACE = 5.0

# Installs a TERM handler that writes a file, then stops itself (a job that got SIGTSTP, or
# stopped itself). argv: the file the handler writes, the file its pid goes to.
STOPS_ITSELF = """
import os, signal, sys
def term(*_):
    with open(sys.argv[1], "w") as f:
        f.write("term\\n")
    os._exit(0)
signal.signal(signal.SIGTERM, term)
with open(sys.argv[2], "w") as f:
    f.write(f"{os.getpid()}\\n")
os.kill(os.getpid(), signal.SIGSTOP)
signal.pause()
"""

# The same, in a child that moved to a group of its own in the run's session (as a shell with
# job control puts a job): the TERM reaches it through the session sweep. The parent, on TERM,
# waits for it (were the parent to die first, the kernel would SIGHUP the child's group, by
# then orphaned, and end it without its handler).
CHILD_IN_OWN_GROUP = (
    """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (os.waitpid(child, 0), os._exit(0)))
child = os.fork()
if child == 0:
    os.setpgid(0, 0)
"""
    + "".join(f"    {line}\n" for line in STOPS_ITSELF.strip().splitlines()[1:])
    + """
time.sleep(300)
"""
)


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids to SIGKILL at teardown, so a failing test leaves nothing stopped behind."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def state(pid: int) -> bytes | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()[0]


async def stopped_pid(path: Path, seconds: float = 20.0) -> int:
    """The pid written to ``path``, once that process is stopped."""
    deadline = time.monotonic() + seconds
    while True:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n") and state(int(text)) == b"T":
            return int(text)
        if time.monotonic() > deadline:
            raise AssertionError(f"no stopped process named in {path} within {seconds}s")
        await asyncio.sleep(0.01)


def gone(pid: int) -> bool:
    return state(pid) in (None, b"Z", b"X")


def stop_stopped(script: str, tmp_path: Path, strays: list[int]) -> tuple[Outcome, int]:
    """Run ``script``, stop the run once the process it names is stopped; the outcome, and
    that process's pid."""
    handled, pidfile = tmp_path / "handled", tmp_path / "pid"

    async def scenario() -> tuple[Outcome, int]:
        command = CommandRun(
            [sys.executable, "-c", script, str(handled), str(pidfile)],
            env=ENV,
            kill_grace=GRACE,
        )
        task = asyncio.create_task(command.run())
        await command.started.wait()
        if command.pid is not None:
            strays.append(command.pid)
        stopped = await stopped_pid(pidfile)
        strays.append(stopped)
        command.stop("Replaced")
        return await task, stopped

    outcome, stopped = asyncio.run(scenario())
    assert handled.exists(), "the TERM handler did not run"
    assert handled.read_text() == "term\n"
    return outcome, stopped


def test_a_stopped_command_handles_the_term_of_a_stop(tmp_path: Path, strays: list[int]) -> None:
    outcome, stopped = stop_stopped(STOPS_ITSELF, tmp_path, strays)
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason == "Replaced"
    assert outcome.exit_code == 0  # its handler's exit, not a SIGKILL
    assert "SIGKILL" not in (outcome.message or "")
    assert gone(stopped)


def test_a_stopped_job_in_another_group_handles_the_term_of_the_session_sweep(
    tmp_path: Path, strays: list[int]
) -> None:
    outcome, stopped = stop_stopped(CHILD_IN_OWN_GROUP, tmp_path, strays)
    assert outcome.status is RunStatus.FAILED
    assert outcome.exit_code == 0  # the parent's handler's exit, once its child's had run
    assert "SIGKILL" not in (outcome.message or "")
    assert gone(stopped)


def test_a_stopped_leftover_is_terminated_without_waiting_the_grace(
    tmp_path: Path, strays: list[int]
) -> None:
    pidfile = tmp_path / "pid"
    # Exits at once, leaving a stopped sleep in its group: TERM alone would stay pending.
    script = f"sleep 300 & echo $! > {pidfile}; kill -STOP $!; exit 0"
    command = CommandRun(["sh", "-c", script], env=ENV, kill_grace=GRACE)
    outcome = asyncio.run(command.run())
    leftover = int(pidfile.read_text())
    strays.append(leftover)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.message == (
        "exited with status 0; processes it left in its group were terminated"
    )
    assert gone(leftover)
