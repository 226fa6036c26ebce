"""A command that exits by itself has what it left in its own group stopped, and nothing else:
a job it left in another group of its session (a shell's ``set -m``) lives on, as the README
says, whether or not the command also left something in its own group.

It used to depend on that: with nothing left in the group the job lived, with something left
the whole session was stopped, job included. Real bash and sleep; pids through files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner.command import CommandRun

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}
# A job in a group of its own (set -m), written to {job} once bash has moved it there.
JOB = "set -m; (exec sleep 300) & echo $! > {job}; "
# Then, job control off, a process in the command's own group, written to {own}; or one that
# ignores SIGTERM, so that its group is killed after the grace.
IN_GROUP = {
    "alone": "",
    "and-in-its-group": "set +m; (exec sleep 300) & echo $! > {own}; ",
    "and-in-its-group-ignoring-term": "set +m; trap '' TERM; (exec sleep 300) & echo $! > {own}; ",
}
MESSAGES = {
    "alone": "exited with status 0",
    "and-in-its-group": "exited with status 0; processes it left in its group were terminated",
    "and-in-its-group-ignoring-term": (
        "exited with status 0; processes it left in its group were terminated"
        " (SIGKILL after 0.2s grace period)"
    ),
}


def alive(pid: int) -> bool:
    """Alive and not a zombie (where nothing reaps orphans, a killed one stays a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def pid_in(path: Path) -> int:
    """The pid the command wrote to ``path``: it has exited, so the write is whole."""
    text = path.read_text()
    assert text.endswith("\n"), text
    return int(text)


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids to SIGKILL at teardown: the job that is meant to live on, and any a failure left."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("left", sorted(IN_GROUP))
def test_a_job_left_in_another_group_outlives_a_command_that_exits(
    tmp_path: Path, strays: list[int], left: str
) -> None:
    job, own = tmp_path / "job", tmp_path / "own"
    script = (JOB + IN_GROUP[left] + "exit 0").format(job=job, own=own)
    command = CommandRun(["bash", "-c", script], env=ENV, kill_grace=0.2)
    outcome = asyncio.run(command.run())
    job_pid = pid_in(job)
    strays.append(job_pid)
    if own.exists():
        strays.append(pid_in(own))
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.message == MESSAGES[left]
    assert os.getsid(job_pid) == command.pid  # in the run's session ...
    assert os.getpgid(job_pid) == job_pid  # ... in a group of its own
    # The run has returned: what it was to stop is gone already, and the job lives on.
    assert alive(job_pid)
    if own.exists():
        assert not alive(pid_in(own))
