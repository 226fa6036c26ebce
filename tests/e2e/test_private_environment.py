"""A command runs as crontask's user: ``--task-env minimal`` keeps crontask's environment (the
``--db`` URL, tokens) out of the command's, and crontask's ``/proc`` files keep the command
from reading it there (``/proc/$PPID/environ``). Root may read any process's files, so
crontask runs as ``nobody`` here."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("setpriv") is None,
        reason="needs root and setpriv, to run crontask as another user",
    ),
]

SECRET = "Db-Passw0rd-In-Env"  # noqa: S105 - a test value
TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: peek}
spec:
  schedule: "* * * * * *"
  command: {args: ["sh", "-c", "cat /proc/$PPID/environ; echo; ls /proc/$PPID/fd"]}
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder ``nobody`` may write (pytest's own are its user's alone)."""
    path = Path(tempfile.mkdtemp(prefix="crontask-private-"))
    # Sticky, as /tmp: a plain folder anyone may write is refused above a state directory.
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_a_command_cannot_read_crontasks_environment(shared_dir: Path) -> None:
    tasks = shared_dir / "tasks"
    tasks.mkdir()
    (tasks / "peek.yaml").write_text(TASK)
    tasks.chmod(0o755)
    state = shared_dir / "state"
    command = [
        *("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"),
        *(sys.executable, "-m", "reconciler", "run", str(tasks)),
        *("--state-dir", str(state), "--listen", "off", "--shutdown-grace", "1s"),
    ]
    env = {**os.environ, "CRONTASK_TEST_SECRET": SECRET}
    with (shared_dir / "crontask.log").open("wb") as log:
        proc = subprocess.Popen(command, cwd=shared_dir, env=env, stdout=log, stderr=log)
    try:
        wait_for("a finished run", lambda: _finished(state), 30)
    finally:
        proc.terminate()
        proc.wait(30)
    output = _finished(state)
    assert output is not None
    assert SECRET not in output
    assert "Permission denied" in output, output


def _finished(state: Path) -> str | None:
    """The output of the first finished run. Read with sqlite3 itself: crontask's store would
    (rightly) refuse a folder another user owns."""
    db = state / "runs.db"
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        try:
            row = conn.execute(
                "SELECT output FROM runs WHERE task = 'default/peek' AND status != 'running'"
            ).fetchone()
        except sqlite3.OperationalError:  # not made yet
            return None
    return None if row is None else str(row[0])
