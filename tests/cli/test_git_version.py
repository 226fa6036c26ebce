"""The git source needs git 2.32 or later: an older git reads the user's ``~/.gitconfig``
(``GIT_CONFIG_GLOBAL`` is 2.32's), whose ``url.insteadOf``, ``core.sshCommand`` or credential
helper would change what crontask fetches. ``crontask run --git`` with such a git, or none,
says so in one line and exits 1 before anything runs. Each ``git`` here is a script on a PATH
of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.gitprocess import version_problem


def fake_git(folder: Path, says: str) -> dict[str, str]:
    """An environment whose PATH finds, first, a ``git`` that prints ``says``."""
    folder.mkdir(exist_ok=True)
    git = folder / "git"
    git.write_text(f"#!/bin/sh\nprintf '%s\\n' '{says}'\n")
    git.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("says", "problem"),
    [
        ("git version 2.31.8", "git 2.31 is older than 2.32, the first that lets crontask"),
        ("git version 1.9.1", "git 1.9 is older than 2.32"),
        ("hub version 2.14", "cannot tell git's version from b'hub version 2.14\\n'"),
        ("git version 2.32.0", None),
        ("git version 2.39.5", None),
        ("git version 3.0.0.windows.1", None),
    ],
)
def test_the_version_of_git_is_checked(tmp_path: Path, says: str, problem: str | None) -> None:
    found = version_problem(fake_git(tmp_path / "bin", says))
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)


def test_no_git_at_all_is_said(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert version_problem({"PATH": str(empty)}) == "cannot run git: No such file or directory"


def test_the_real_git_here_is_new_enough() -> None:
    assert version_problem(dict(os.environ)) is None


def test_run_with_an_old_git_exits_before_anything_runs(tmp_path: Path) -> None:
    env = fake_git(tmp_path / "bin", "git version 2.30.2")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--git", "file:///nowhere", "--listen", "off"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "crontask: --git: git 2.30 is older than 2.32, the first that lets crontask keep the "
        "user's and the system's git configuration out of its fetches: install a newer git"
    ]
    assert not (tmp_path / ".crontask").exists()  # no state directory made: nothing ran
