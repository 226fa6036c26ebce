"""A daemon a command starts with ``setsid`` as its last step survives the command's exit.

The shell's background child is in the run's group until the ``setsid`` program it execs has
called setsid(2), and the shell often exits first: the run gives what it left a moment to leave
the group (``command._SETTLE``) before it terminates what is still there. Real processes; a
daemon proves it lives by writing a file only once the test has seen every run end (when a
daemon killed with its group would be dead already).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner import command as command_module
from reconciler.runner.base import Outcome
from reconciler.runner.command import CommandRun

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}
RUNS = 10


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Path]:
    """A folder for the daemons' files; at teardown, every daemon that wrote its pid is killed
    (one left waiting for its go file by a failing test included)."""
    yield tmp_path
    for pidfile in tmp_path.glob("pid-*"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def daemon_script(folder: Path, name: str) -> str:
    """The idiom: a daemon started with setsid as the script's last step, output redirected."""
    daemon = (
        f"echo $$ > {folder}/pid-{name}; "
        f"while [ ! -e {folder}/go ]; do sleep 0.01; done; "
        f"echo alive > {folder}/proof-{name}"
    )
    return f"setsid sh -c '{daemon}' >/dev/null 2>&1 & echo started"


def run_script(script: str) -> Outcome:
    return asyncio.run(CommandRun(["sh", "-c", script], env=ENV, kill_grace=1.0).run())


def proofs(folder: Path, names: list[str], seconds: float = 5.0) -> list[str]:
    """The daemons of ``names`` that wrote their proof (each waits for the go file), waiting
    up to ``seconds`` for all of them."""
    deadline = time.monotonic() + seconds
    while True:
        written = [name for name in names if (folder / f"proof-{name}").exists()]
        if len(written) == len(names) or time.monotonic() > deadline:
            return written
        time.sleep(0.01)


def test_a_daemon_started_with_setsid_as_the_last_step_survives(daemons: Path) -> None:
    names = [str(i) for i in range(RUNS)]
    outcomes = [run_script(daemon_script(daemons, name)) for name in names]
    # Every run has ended: a daemon terminated with its group is gone by now.
    (daemons / "go").touch()
    assert proofs(daemons, names) == names
    for outcome in outcomes:
        assert outcome.status is RunStatus.SUCCEEDED
        assert outcome.output == "started\n"
        assert outcome.message == "exited with status 0"  # nothing was left in its group


def test_the_settle_ends_as_soon_as_the_group_is_empty(
    daemons: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settle is an upper bound, not a wait: made very long, a run whose daemon has left
    the group still ends at once."""
    monkeypatch.setattr(command_module, "_SETTLE", 120.0)
    started = time.monotonic()
    outcome = run_script(daemon_script(daemons, "quick"))
    assert time.monotonic() - started < 30
    assert outcome.message == "exited with status 0"
    (daemons / "go").touch()
    assert proofs(daemons, ["quick"]) == ["quick"]


def test_a_background_child_that_stays_in_the_group_is_still_terminated(
    daemons: Path,
) -> None:
    pidfile = daemons / "pid-stays"
    outcome = run_script(f"sleep 300 & echo $! > {pidfile}; echo bye")
    assert outcome.message == (
        "exited with status 0; processes it left in its group were terminated"
    )
    pid = int(pidfile.read_text())
    # Reaped by the reaper of orphans, or a zombie where nothing reaps them: dead either way.
    deadline = time.monotonic() + 5
    while not _dead(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _dead(pid)


def _dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(b")") + 2 :].split()[0] in (b"Z", b"X")
