"""Commands a dead crontask left running: found by what their environment says, stopped as
sessions. Real processes in sessions of their own, as crontask starts commands."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runner import leftovers
from reconciler.runner.leftovers import Leftover
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

DEAD = "host:4242:0badc0de"
Procs = list[subprocess.Popen[bytes]]


@pytest.fixture
def procs() -> Iterator[Procs]:
    started: Procs = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()


def command(
    procs: Procs, script: str, run: str, attempt: str = "1", instance: str | None = DEAD
) -> subprocess.Popen[bytes]:
    env = {"PATH": os.environ["PATH"], "CRONTASK_RUN_ID": run, "CRONTASK_ATTEMPT": attempt}
    if instance is not None:
        env["CRONTASK_INSTANCE"] = instance
    proc = subprocess.Popen(["sh", "-c", script], env=env, start_new_session=True)
    procs.append(proc)
    return proc


def written(path: Path) -> str:
    def text() -> str | None:
        found = path.read_text() if path.exists() else ""
        return found if found.endswith("\n") else None

    return wait_for(f"{path} written", text)


def mine(found: dict[Leftover, set[int]]) -> dict[Leftover, set[int]]:
    """What the scan found of this test's processes (the host may run other crontasks)."""
    return {left: sids for left, sids in found.items() if left.run_id.startswith("test.")}


def test_the_scan_finds_each_run_and_instance_with_its_session(procs: Procs) -> None:
    first = command(procs, "exec sleep 30", "test.backup.1")
    # The same run id from another instance's store (same task, same slot), a retry.
    other = command(procs, "exec sleep 30", "test.backup.1", instance="host:7:feedface")
    retry = command(procs, "exec sleep 30", "test.backup.1", attempt="2")
    # No instance (a run started by an older crontask), or an attempt that is no number.
    command(procs, "exec sleep 30", "test.backup.1", instance=None)
    command(procs, "exec sleep 30", "test.backup.1", attempt="x")
    wait_for("the commands to start", lambda: len(mine(leftovers.scan())) == 3 or None)
    assert mine(leftovers.scan()) == {
        Leftover("test.backup.1", 1, DEAD): {first.pid},
        Leftover("test.backup.1", 1, "host:7:feedface"): {other.pid},
        Leftover("test.backup.1", 2, DEAD): {retry.pid},
    }


def test_a_session_whose_leader_is_gone_is_found_by_what_is_left_of_it(
    procs: Procs, tmp_path: Path
) -> None:
    marker = tmp_path / "child"
    leader = command(procs, f"sleep 30 & echo $! > {marker}", "test.backup.2")
    child = int(written(marker))
    leader.wait()
    assert mine(leftovers.scan()) == {Leftover("test.backup.2", 1, DEAD): {leader.pid}}
    assert leftovers.stop({leader.pid}, grace=5.0) == set()
    wait_for("the child to be gone", lambda: _gone(child) or None)


def test_a_command_that_ends_on_sigterm_is_not_killed(procs: Procs) -> None:
    proc = command(procs, "exec sleep 30", "test.backup.3")
    assert leftovers.stop({proc.pid}, grace=5.0) == set()
    assert proc.wait(timeout=5) == -15


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(
    procs: Procs, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    proc = command(procs, f"trap '' TERM; echo ok > {ready}; sleep 30", "test.backup.4")
    written(ready)
    assert leftovers.stop({proc.pid}, grace=0.2) == {proc.pid}
    assert proc.wait(timeout=5) == -9


def test_without_proc_nothing_is_found(tmp_path: Path) -> None:
    assert leftovers.scan(proc=str(tmp_path / "missing")) == {}


def _gone(pid: int) -> bool:
    """Gone, or a zombie (where nothing reaps orphans, as in some containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X")
