"""crontask run as root says so at start: its commands run as root too, and root reads any
process's /proc files, so keeping crontask's own private does not keep its environment (the
``--db`` URL, tokens) from them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.controller import runtime


def test_root_is_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="crontask"):
        runtime.as_root(0)
    assert [r.getMessage() for r in caplog.records] == [
        "running as root: commands run as root too and can read crontask's environment "
        "and memory (/proc/$PPID/environ); run crontask as an unprivileged user"
    ]


def test_another_user_is_not(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="crontask"):
        runtime.as_root(10001)
    assert caplog.records == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the warning of a real start is root's")
def test_a_real_start_as_root_warns(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "tasks", "--allow-empty", "--listen", "off"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if len(lines) > 1 and "crontask started" in lines[-2]:
                break  # the warning is the line after it
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(lines)
    root = [line for line in lines if "running as root" in line]
    assert len(root) == 1, lines
    assert "level=warning" in root[0]
