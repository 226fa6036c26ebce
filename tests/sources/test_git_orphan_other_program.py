"""Another program's git working on crontask's repository is left running, and nothing is
removed under it while it lives: its ``*.lock`` and temporary files are its own, in use (a
ref lock deleted under it lets a second writer in). Nor is a git that names the repository
other than as crontask's git calls do (an alias's argument) taken for an earlier
crontask's and killed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.sources import gitmaintenance
from tests.sources.test_git import isolated_git
from tests.sources.test_git_orphan_git import LAUNCHER, in_group, running, until_in_group

__all__ = ["isolated_git"]  # fixture shared with test_git


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True, timeout=30)
    return path


def until_gone(group: int, marker: bytes) -> None:
    """Wait, up to a deadline, until no process of ``group`` names ``marker``."""
    deadline = time.monotonic() + 30
    while in_group(group, lambda args: marker in args):
        assert time.monotonic() < deadline, f"group {group} still runs its git"
        time.sleep(0.02)


def test_nothing_is_removed_while_another_programs_git_works_on_the_repository(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = bare(tmp_path / "repo.git")
    marker = os.fsencode(f"--git-dir={repo}")
    record = repo / gitmaintenance.RUNNER_RECORD
    # An operator's script, in a session of its own, whose git holds a ref lock (as a
    # ``git update-ref`` would while it writes) and a pack on its way.
    script = f"sleep 600 | git --git-dir={repo} cat-file --batch"
    lock, pack = repo / "refs/heads/main.lock", repo / "objects/pack/tmp_pack_x"
    with running([sys.executable, "-c", LAUNCHER, script]) as launcher:
        until_in_group(launcher.pid, lambda args: marker in args)
        lock.write_text("0" * 40 + "\n")
        pack.write_text("")
        with caplog.at_level(logging.WARNING, logger="crontask.sources.git"):
            for _ in range(3):  # each call looks again, as long as it runs
                gitmaintenance.remove_leftovers(repo)
                assert lock.exists()
                assert pack.exists()
                assert not record.exists()
        assert launcher.poll() is None
        assert in_group(launcher.pid, lambda args: marker in args)
    until_gone(launcher.pid, marker)  # ended (``running`` kills its group)

    gitmaintenance.remove_leftovers(repo)
    assert not lock.exists()
    assert not pack.exists()
    assert record.exists()
    warned = [r for r in caplog.records if r.msg.startswith("a git of another program")]
    assert [r.fields["process_groups"] for r in warned] == [[launcher.pid]]  # type: ignore[attr-defined]


def test_a_git_naming_the_repository_in_an_aliass_arguments_is_not_killed(
    tmp_path: Path,
) -> None:
    repo, other = bare(tmp_path / "repo.git"), bare(tmp_path / "other.git")
    marker = os.fsencode(f"--git-dir={repo}")
    # A session leader's git, working in another repository, whose alias is given crontask's
    # repository as an argument: not crontask's git call (that names it first, after ``-c``s).
    alias = ["git", f"--git-dir={other}", "-c", "alias.x=!sleep 600 #", "x", marker.decode()]
    with running(alias) as git:
        until_in_group(git.pid, lambda args: any(arg.startswith(b"sleep") for arg in args))
        assert not gitmaintenance.end_orphans(repo)  # it is left running: waited for
        assert git.poll() is None


def test_a_leftover_older_than_another_programs_git_is_removed_while_it_works(
    tmp_path: Path,
) -> None:
    """A reader (an operator's ``git log`` in a pager) must not stop every fetch at a lock an
    earlier crontask left behind: what is older than every other program's git at work on the
    repository is no lock of theirs, and goes; what is newer stays."""
    repo = bare(tmp_path / "repo.git")
    marker = os.fsencode(f"--git-dir={repo}")
    stale, theirs = repo / "refs/heads/main.lock", repo / "objects/pack/tmp_pack_x"
    stale.write_text("0" * 40 + "\n")
    hour_ago = time.time() - 3600  # before the reader below started
    os.utime(stale, (hour_ago, hour_ago))
    script = f"sleep 600 | git --git-dir={repo} cat-file --batch"
    with running([sys.executable, "-c", LAUNCHER, script]) as launcher:
        until_in_group(launcher.pid, lambda args: marker in args)
        theirs.write_text("")  # made while it works: may be its own
        gitmaintenance.remove_leftovers(repo)
        assert not stale.exists()
        assert theirs.exists()
        assert launcher.poll() is None
    until_gone(launcher.pid, marker)
