"""Fault: commands that misbehave, against the real ``CommandRun`` and real processes.

- a gigabyte of output: only the last 64 KiB is kept, and memory stays bounded (measured in a
  fresh interpreter, whose peak RSS is not hidden by what earlier tests allocated);
- a daemon forked into the run's group that ignores SIGTERM: killed with the group (SIGKILL
  after the grace period) when the main process exits, and at a timeout;
- a daemon that escaped the group (``setsid``) and ignores SIGTERM while holding the output
  pipe: beyond reach, but it cannot keep a run open past the timeout (``_DRAIN_TIMEOUT``);
- a command that closes its stdout and stderr and keeps running: the run ends when the process
  exits, not when the pipe closes, and a timeout still stops it.

Start failures (a program that does not exist or is not executable) are in ``test_command``
(``test_missing_binary_is_a_start_failure``, ``test_non_executable_file_is_a_start_failure``)
and, through ``crontask run``, in ``tests/e2e/test_fault_command.py``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.command import _DRAIN_TIMEOUT, CommandRun
from tests.runner.test_command import ENV, alive, arun, gone_within, read_pid, run, strays

__all__ = ["strays"]  # the fixture, shared with test_command

GIB = 1 << 30
KEPT = 64 * 1024

# Runs one CommandRun in a fresh interpreter and prints what it kept and the peak RSS growth.
_FLOOD = """
import asyncio, json, os, resource, sys
from reconciler.runner.command import CommandRun

def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

before = peak_kib()
outcome = asyncio.run(CommandRun(sys.argv[1:], env={"PATH": os.defpath}).run())
print(json.dumps({
    "status": str(outcome.status),
    "output": outcome.output,
    "peak_growth_kib": peak_kib() - before,
}))
"""


def test_a_gigabyte_of_output_keeps_the_tail_in_bounded_memory() -> None:
    # 1 GiB of zeros, then a last line to recognise the tail by.
    script = f"head -c {GIB} /dev/zero; echo; echo the-end"
    done = subprocess.run(
        [sys.executable, "-c", _FLOOD, "sh", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    total = GIB + len("\nthe-end\n")
    # NUL is kept as U+FFFD (as the store writes it), three bytes: a third of the zeros fit.
    kept_zeros = (KEPT - 9) // 3
    assert result["output"] == (
        f"[... {total - kept_zeros - 9} bytes truncated ...]\n"
        + "\ufffd" * kept_zeros
        + "\nthe-end\n"
    )
    # Reading a gigabyte must cost about one read buffer, not the gigabyte: well under 32 MiB.
    assert result["peak_growth_kib"] < 32 * 1024, result["peak_growth_kib"]


def test_a_daemon_ignoring_sigterm_left_in_the_group_is_killed(
    tmp_path: Path, strays: list[int]
) -> None:
    pidfile = tmp_path / "pid"
    # The main process exits as soon as the daemon it forked ignores SIGTERM (the daemon writes
    # its pid once it does); the daemon keeps the output pipe.
    script = (
        f"sh -c 'trap \"\" TERM; echo $$ > {pidfile}; exec sleep 300' & "
        f"while [ ! -s {pidfile} ]; do sleep 0.01; done; echo started"
    )
    outcome = run(["sh", "-c", script], kill_grace=0.5)
    daemon = int(pidfile.read_text())
    strays.append(daemon)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == "started\n"
    assert outcome.message == (
        "exited with status 0; processes it left in its group were terminated "
        "(SIGKILL after 0.5s grace period)"
    )
    assert gone_within(daemon)


def test_an_escaped_daemon_ignoring_sigterm_cannot_keep_a_timed_out_run_open(
    tmp_path: Path, strays: list[int]
) -> None:
    pidfile = tmp_path / "pid"
    # The daemon leaves the group (setsid), ignores SIGTERM and holds the output pipe; the main
    # process hangs until the timeout.
    script = (
        f"setsid sh -c 'trap \"\" TERM; echo $$ > {pidfile}; exec sleep 300' & "
        f"while [ ! -s {pidfile} ]; do sleep 0.01; done; echo waiting; exec sleep 300"
    )

    async def scenario() -> tuple[Outcome, int, float]:
        command = CommandRun(["sh", "-c", script], env=ENV, timeout=0.5, kill_grace=0.5)
        task = asyncio.create_task(command.run())
        escaped = await read_pid(pidfile)
        strays.append(escaped)
        # From here the run waits for its timeout, the group's end and at most the drain.
        began = time.monotonic()
        return await task, escaped, time.monotonic() - began

    outcome, escaped, waited = arun(scenario())
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.exit_code == 128 + signal.SIGTERM
    assert outcome.output == "waiting\n"
    assert alive(escaped)  # out of reach, as documented: the run ended without it
    # Not a timing test: a run kept open by the daemon would wait its 300 s.
    assert waited < 0.5 + 0.5 + _DRAIN_TIMEOUT + 10


def test_a_command_that_closes_its_output_runs_until_it_exits(tmp_path: Path) -> None:
    closed, gate, marker = tmp_path / "closed", tmp_path / "gate", tmp_path / "done"
    # Output closed first; the process then works on (here: waits for the gate) and exits 3.
    script = (
        f"echo before; exec >&- 2>&-; touch {closed}; "
        f"while [ ! -e {gate} ]; do sleep 0.01; done; touch {marker}; exit 3"
    )

    async def scenario() -> tuple[Outcome, bool]:
        task = asyncio.create_task(CommandRun(["sh", "-c", script], env=ENV).run())
        await wait_for_file(closed)
        # Time for the loop to read the pipe's end: a run that ended with it would be over now
        # (a correct run cannot end before the gate opens, so this wait cannot make it fail).
        await asyncio.sleep(0.2)
        still_open = not task.done()
        gate.touch()
        return await task, still_open

    outcome, still_open = arun(scenario())
    assert still_open
    assert marker.exists()  # the run ended after the process's last act, not before
    assert outcome.status is RunStatus.FAILED
    assert outcome.exit_code == 3
    assert outcome.output == "before\n"


def test_a_command_that_closes_its_output_still_times_out() -> None:
    outcome = run(["sh", "-c", "exec >&- 2>&-; exec sleep 300"], timeout=0.5, kill_grace=0.5)
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.exit_code == 128 + signal.SIGTERM
    assert outcome.pid is not None
    assert gone_within(outcome.pid)


async def wait_for_file(path: Path, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not created within {seconds}s")
        await asyncio.sleep(0.01)
