"""Paths given on the command line that are not plain files or folders, as real subprocesses:
one that cannot be looked at (a link on its way that cannot be followed, as a folder without
search permission is) is the error of that path, never a traceback; a loop of links is said
to be one; and a missing path is printed escaped, whatever bytes its name holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sources.test_unfollowable_links import unfollowable

GOOD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: good}\n"
    'spec: {schedule: "@daily", command: {args: ["true"]}}\n'
)


def crontask(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["validate", "next"])
def test_a_path_that_cannot_be_looked_at_is_its_error(command: str, tmp_path: Path) -> None:
    """``locked/x.yaml`` where ``locked`` leads where crontask may not go (EACCES from stat,
    as under a folder without search permission)."""
    os.symlink(unfollowable(), tmp_path / "locked")
    (tmp_path / "good.yaml").write_text(GOOD)
    run = crontask(command, "locked/x.yaml", cwd=tmp_path)
    assert "Traceback" not in run.stderr
    assert run.returncode == 1, run.stderr
    said = run.stdout + run.stderr
    assert "locked/x.yaml: a symbolic link on this path cannot be followed: not read" in said


def test_run_with_such_a_path_starts_and_says_it(tmp_path: Path) -> None:
    """``crontask run`` does not stop at start: the path is an error of its own, as when it
    becomes unreadable while crontask runs, and the other paths are read."""
    os.symlink(unfollowable(), tmp_path / "locked")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "good.yaml").write_text(GOOD)
    args = ["run", "tasks", "locked/x.yaml", "--listen", "off", "--state-dir", "state"]
    child = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    try:
        seen = []
        for line in child.stderr:
            seen.append(line)
            if "cannot be followed" in line or "Traceback" in line:
                break
        assert "locked/x.yaml" in seen[-1], "".join(seen)
        assert "cannot be followed" in seen[-1], "".join(seen)
        assert child.poll() is None
    finally:
        child.terminate()
        child.wait(timeout=30)
        child.stderr.close()


def test_a_loop_of_links_is_said_to_be_one(tmp_path: Path) -> None:
    os.symlink("loop.yaml", tmp_path / "loop.yaml")
    run = crontask("validate", "loop.yaml", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr == "crontask: a loop of symbolic links: loop.yaml\n"


def test_a_missing_path_is_printed_escaped(tmp_path: Path) -> None:
    for command in ("validate", "next", "run"):
        run = crontask(command, "x\x1b[31m\nforged.yaml", cwd=tmp_path)
        assert run.returncode == 2, command
        assert run.stderr == "crontask: no such file or directory: x\\x1b[31m\\x0aforged.yaml\n"
