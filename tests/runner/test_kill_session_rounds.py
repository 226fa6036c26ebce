"""A stopped run's SIGKILL leaves nothing of its session alive, even when a member that ignores
SIGTERM keeps starting jobs in groups of their own (a shell with ``set -m``) up to the kill.

One KILL to the groups one look at /proc listed missed every job started after that look: they
ran on in the run's session while its record said "process group terminated". Real bash, real
/proc. Each look here ends only once the fork loop has started a job the look did not list (or
is dead), so the race the loop wins now and then on its own is won every time; the session is
then looked up by its id (the run's pid) as soon as the run has returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner import group, leftovers
from reconciler.runner.base import Outcome
from reconciler.runner.command import CommandRun

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}
# A fork loop that ignores SIGTERM (and so does each job: ignored signals stay ignored across
# fork and exec), writes its pid once it loops, and starts a job in a group of its own every
# 5 ms (a read that times out on a FIFO no one writes to: no process of its own). Either the
# session's leader loops, or a job of its own does (a group the leader's KILL does not reach).
LOOP = "exec sleep 300) & read -t 0.005 -u 3; done"
FORK_LOOPS = {
    "leader": f"set -m; trap '' TERM; exec 3<> {{fifo}}; echo $$ > {{ready}}; while :; do ({LOOP}",
    "job": (
        "set -m; trap '' TERM; exec 3<> {fifo}; "
        f"(set -m; echo $BASHPID > {{ready}}; while :; do ({LOOP}) & wait"
    ),
}
Forkers = list[tuple[int, int]]  # (session, the pid of its fork loop)


def fork_loop(tmp_path: Path, which: str) -> list[str]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return ["bash", "-c", FORK_LOOPS[which].format(fifo=fifo, ready=tmp_path / "ready")]


def live_members(sid: int) -> dict[int, int]:
    """The live (not zombie) processes of the session ``sid``, pid -> process group."""
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue  # gone since the listing
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X") and int(fields[3]) == sid:
            found[int(entry)] = int(fields[2])
    return found


def wait_for_file(path: Path, seconds: float = 5.0) -> int:
    """The pid written to ``path`` (a trailing newline: the write is whole)."""
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < deadline, f"{path} was not written within {seconds}s"
        time.sleep(0.01)
    return int(path.read_text())


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


@pytest.fixture
def sessions() -> Iterator[list[int]]:
    """Sessions to empty at teardown, so a failing test leaves no sleep 300 behind."""
    sids: list[int] = []
    yield sids
    for sid in sids:
        for _ in range(100):
            members = live_members(sid)
            if not members:
                break
            for pgid in set(members.values()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.01)


@pytest.fixture
def late_jobs(monkeypatch: pytest.MonkeyPatch) -> Forkers:
    """Each look at /proc ends only once a fork loop listed here has started a job in a group
    the look did not list, or is dead: a kill of what a look found leaves that job alive.
    Bounded: a look waits for at most 2 s."""
    forkers: Forkers = []
    real = group._scan_live_groups

    def look_then_let_a_job_start() -> dict[int, frozenset[int]] | None:
        found = real()
        for sid, forker in forkers:
            listed = (found or {}).get(sid, frozenset())
            deadline = time.monotonic() + 2.0
            while alive(forker) and time.monotonic() < deadline:
                if set(live_members(sid).values()) - listed:
                    break
                time.sleep(0.001)
        return found

    monkeypatch.setattr(group, "_scan_live_groups", look_then_let_a_job_start)
    return forkers


@pytest.mark.parametrize("which", sorted(FORK_LOOPS))
def test_a_timed_out_fork_loop_of_set_m_jobs_leaves_nothing_in_its_session(
    tmp_path: Path, sessions: list[int], late_jobs: Forkers, which: str
) -> None:
    async def scenario() -> tuple[Outcome, int | None]:
        command = CommandRun(fork_loop(tmp_path, which), env=ENV, timeout=0.5, kill_grace=0.2)
        task = asyncio.create_task(command.run())
        await command.started.wait()
        if command.pid is not None:
            sessions.append(command.pid)
            forker = await asyncio.to_thread(wait_for_file, tmp_path / "ready")
            late_jobs.append((command.pid, forker))
        return await task, command.pid

    outcome, sid = asyncio.run(scenario())
    assert sid is not None, outcome
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.exit_code == 128 + signal.SIGKILL
    # Nothing waited for: the run returns once a look after its last kill found nothing.
    assert live_members(sid) == {}


def test_left_over_fork_loops_are_stopped_to_the_last_job(
    tmp_path: Path, sessions: list[int], late_jobs: Forkers
) -> None:
    proc = subprocess.Popen(fork_loop(tmp_path, "job"), start_new_session=True, env=ENV)
    try:
        sessions.append(proc.pid)
        late_jobs.append((proc.pid, wait_for_file(tmp_path / "ready")))
        assert leftovers.stop({proc.pid}, grace=0.2) == {proc.pid}
        assert live_members(proc.pid) == {}
    finally:
        proc.kill()
        proc.wait()
