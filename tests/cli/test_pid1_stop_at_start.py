"""As PID 1 (a container), ``crontask run`` stops on SIGTERM while it waits for a run store
that never answers. The kernel drops a signal PID 1 has no handler for, and crontask put its
handlers in place only once the store was open: SIGTERM waited for the store (or for the
kill that follows it, losing the grace a pod's stop gives)."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="a PID namespace needs root"
)
PATIENCE = 20.0  # generous: the store would be waited for 300 s


def child_of(pid: int) -> int | None:
    """The process ``unshare --fork`` started: PID 1 of its namespace, seen from here."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else None


def test_sigterm_while_the_store_does_not_answer_stops_pid_1(tmp_path: Path) -> None:
    # A database that takes connections (the kernel completes them) and never says a word.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    db = f"postgresql+psycopg://u:p@127.0.0.1:{port}/db?connect_timeout=300"
    (tmp_path / "tasks").mkdir()
    argv = [sys.executable, "-m", "reconciler", "run", "tasks", "--listen", "off", "--db", db]
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *argv],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Its connection is there to be accepted: it is waiting for the store's answer.
        assert select.select([silent], [], [], PATIENCE)[0], "crontask never connected"
        pid1 = wait_for("the namespace's PID 1", lambda: child_of(proc.pid), PATIENCE)
        os.kill(pid1, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=PATIENCE)
    finally:
        proc.kill()  # --kill-child: PID 1, and its namespace, with it
        proc.communicate()
        silent.close()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
