"""Orphans: the real ``crontask run`` as the process orphans are handed to, as in a container
started without an init (``deploy/Dockerfile``: ``ENTRYPOINT ["crontask"]``).

Commands that leave a child behind (``(sleep 0.2 &)``; ``setsid``, as daemonizing tools do)
orphan it to crontask, which must reap it once it ends, or the zombies pile up until the pod's
pids limit refuses every fork. It must do so without ever taking the exit status of a process
the runner waits for: a task that exits 3 is recorded failed with exit code 3, every time.

crontask is PID 1 of a PID namespace of its own (``unshare``, root only), or a child subreaper
(set by a wrapper that then execs it: the same hand-over of orphans, without privileges).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner.reaper import LEADER_GRACE
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import lines, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]
# Makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), then execs the rest of its argv.
SUBREAPER = [
    sys.executable,
    "-c",
    "import ctypes, os, sys; ctypes.CDLL(None).prctl(36, 1, 0, 0, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]
ORPHANING = 4  # tasks per second that orphan a child
ORPHANS = 40  # orphans made before the zombies are counted
# Zombies at any time: the orphans of the last second or two, and the session leaders of the
# last LEADER_GRACE seconds (one a second here), not a pile that grows.
BOUND = int(LEADER_GRACE) + 2 * ORPHANING


def unshare_refused() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip()
        return f"unshare --pid is not permitted here (root needed): {why}"
    return None


def stat_fields(pid: int | str) -> list[str] | None:
    """state, ppid, pgrp, session, ... (the fields after the command name)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def children(parent: int) -> list[tuple[int, list[str]]]:
    found = []
    for name in Path("/proc").iterdir():
        if name.name.isdigit() and (fields := stat_fields(name.name)) and fields[1] == str(parent):
            found.append((int(name.name), fields))
    return found


def zombies(parent: int) -> list[tuple[int, list[str]]]:
    return [(pid, fields) for pid, fields in children(parent) if fields[0] == "Z"]


@pytest.fixture(params=["pid1", "subreaper"])
def adopting(
    request: pytest.FixtureRequest, crontask: Callable[..., Crontask]
) -> Iterator[tuple[Crontask, int]]:
    """crontask started where orphans come to it, and its pid (as this test sees it)."""
    if request.param == "pid1" and (refused := unshare_refused()):
        pytest.skip(refused)
    app = crontask(wrapper=UNSHARE if request.param == "pid1" else SUBREAPER)
    assert app.proc is not None
    pid = app.proc.pid
    if request.param == "pid1":  # crontask is the child unshare forked
        [(pid, _)] = children(app.proc.pid)
    try:
        if request.param == "pid1":
            status = Path(f"/proc/{pid}/status").read_text()
            nspid = status.split("NSpid:")[1].split("\n")[0].split()
            assert nspid[-1] == "1", f"crontask is not PID 1 of its namespace: {nspid}"
        app.wait_log("crontask reaps orphaned processes")
        yield app, pid
    finally:
        if app.proc.poll() is None and pid != app.proc.pid:
            # unshare neither forwards SIGTERM nor stops on it: crontask is stopped by its pid.
            os.kill(pid, signal.SIGTERM)
            app.proc.wait(timeout=30)


@pytest.mark.slow  # 20 s each: ten seconds of orphans, then the leaders' grace waited out
def test_orphans_are_reaped_and_exit_codes_still_recorded(
    adopting: tuple[Crontask, int], tmp_path: Path
) -> None:
    app, pid = adopting
    orphaned = tmp_path / "orphaned.txt"
    for n in range(ORPHANING - 1):  # a child left in the command's session
        script = f"(sleep 0.2 &); echo {n} >> {orphaned}"
        (app.tasks / f"orphan{n}.yaml").write_text(
            task(f"orphan{n}", ["sh", "-c", script], concurrencyPolicy="Allow")
        )
    # A child that left for a session of its own (setsid), as a daemon does: it looks like a
    # command crontask started itself, the case where a reaper could take a tracked child's exit.
    script = f"setsid sleep 0.2 & echo leader >> {orphaned}"
    (app.tasks / "daemon.yaml").write_text(
        task("daemon", ["sh", "-c", script], concurrencyPolicy="Allow")
    )
    (app.tasks / "fails.yaml").write_text(
        task(
            "fails", ["sh", "-c", "exit 3"], concurrencyPolicy="Allow", failedRunsHistoryLimit=1000
        )
    )

    wait_for(f"{ORPHANS} orphans made", lambda: len(lines(orphaned)) >= ORPHANS, timeout=60)
    left = zombies(pid)
    assert len(left) <= BOUND, (
        f"{len(left)} zombies after {len(lines(orphaned))} orphans (never reaped?): "
        f"{[(p, f[3]) for p, f in left]}"
    )
    # Once no more are made, every orphan is reaped, those that lead a session too.
    for name in [*(f"orphan{n}" for n in range(ORPHANING - 1)), "daemon"]:
        (app.tasks / f"{name}.yaml").unlink()
    wait_for("every orphan reaped", lambda: not zombies(pid), timeout=LEADER_GRACE + 15)

    failed = [r for r in app.runs("default/fails") if r.status.finished]
    assert len(failed) >= 5
    assert {(r.status, r.exit_code) for r in failed} == {(RunStatus.FAILED, 3)}, [
        (r.id, r.status, r.exit_code, r.message) for r in failed
    ]
