"""A ``git checkout`` an earlier crontask left running when it was killed hard is stopped
before the next crontask's first sync does anything: run in the new worktree (no
``--git-dir=`` on its command line), it was not found, wrote on in the tree the next checkout
was made in ("checkout of ... failed: [Errno 39] Directory not empty"; 60 000 files, up to
--git-timeout + 5 s), and its worktree's record was deleted under it. The checkout is made to
hang, deterministically, by a ``git`` first on the earlier crontask's PATH that never ends a
``checkout`` (as a large one takes its time)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.sources import gitmaintenance
from reconciler.sources.gitrepo import Redactor
from tests.sources.test_git import (
    Clock,
    Remote,
    clock,
    doc,
    isolated_git,
    remote,
    source_for,
    state,
    synced,
)

__all__ = ["clock", "isolated_git", "remote", "state"]  # fixtures shared with test_git

# The first sync, by another process: the earlier crontask (killed during its checkout).
EARLIER = """
import sys
from pathlib import Path
from reconciler.sources.git import GitOptions, GitSource
GitSource(GitOptions(sys.argv[1], path="tasks"), Path(sys.argv[2])).sync()
"""

# A git whose checkout never ends; every other call is the real git's. It writes its pid (that
# of the ``sleep`` it becomes) once the checkout has begun.
SLOW_GIT = """#!/bin/sh
case " $* " in
*" checkout "*) echo $$ > "{started}"; exec sleep 600;;
esac
exec "{git}" "$@"
"""


def live(group: int) -> bool:
    """Whether a process of ``group`` has not ended (a zombie has)."""
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                fields = file.read().rpartition(b")")[2].split()
        except (OSError, ValueError):  # not a process, or ended meanwhile
            continue
        if len(fields) > 2 and fields[0] not in (b"Z", b"X") and int(fields[2]) == group:
            return True
    return False


def started_checkout(tmp_path: Path, remote: Remote, state: Path) -> int:
    """The process group of the checkout an earlier crontask left running when it was
    killed with SIGKILL mid-way."""
    real = shutil.which("git")
    assert real is not None
    started = tmp_path / "started"
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "git").write_text(SLOW_GIT.format(started=started, git=real))
    (slow / "git").chmod(0o755)
    env = {**os.environ, "PATH": f"{slow}{os.pathsep}{os.environ['PATH']}"}
    earlier = subprocess.Popen([sys.executable, "-c", EARLIER, remote.url, str(state)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not started.is_file() or not started.read_text().strip():
            assert earlier.poll() is None, "the earlier crontask ended before its checkout"
            assert time.monotonic() < deadline, "no checkout began"
            time.sleep(0.02)
    finally:
        earlier.kill()
        earlier.wait()
    return os.getpgid(int(started.read_text()))


def test_a_restart_stops_the_checkout_left_running_before_it_syncs(
    tmp_path: Path,
    remote: Remote,
    state: Path,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    remote.write("tasks/a.yaml", doc("a"))
    head = remote.commit()
    group = started_checkout(tmp_path, remote, state)
    try:
        assert live(group)
        restarted = source_for(remote, state, clock, path="tasks")
        with caplog.at_level(logging.WARNING, logger="crontask.sources.git"):
            assert synced(restarted), restarted.status().last_error
        assert restarted.status().applied_revision == head
        assert not live(group)  # ended before the sync returned
    finally:
        if live(group):
            os.killpg(group, signal.SIGKILL)
    stopped = [
        r for r in caplog.records if r.msg == "git left running by an earlier crontask stopped"
    ]
    assert [r.fields["process_groups"] for r in stopped] == [[group]]  # type: ignore[attr-defined]


def test_the_repository_made_ready_stops_the_checkout_left_running_first(
    tmp_path: Path, remote: Remote, state: Path, clock: Clock
) -> None:
    """``GitRepo.ensure``, the first step of every sync, stops it: what follows deletes its
    worktree's record (``forget_worktrees``) and makes a tree where it writes on."""
    remote.write("tasks/a.yaml", doc("a"))
    remote.commit()
    group = started_checkout(tmp_path, remote, state)
    try:
        assert live(group)
        repo = source_for(remote, state, clock, path="tasks")._repo(None, Redactor())
        assert [p.name for p in (repo.git_dir / "worktrees").iterdir()]  # the orphan's record
        assert repo.ensure() is False
        assert not live(group)
    finally:
        if live(group):
            os.killpg(group, signal.SIGKILL)


def test_a_git_of_another_program_in_a_worktree_is_left_running(
    remote: Remote, state: Path, clock: Clock
) -> None:
    """An operator's git in the worktree in force (``git -C``) names no repository: it is not
    crontask's, and a restart leaves it be."""
    remote.write("tasks/a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    bystander = ["git", "-C", str(source.current), "cat-file", "--batch"]
    with subprocess.Popen(bystander, stdin=subprocess.PIPE, start_new_session=True) as operator:
        try:
            remote.write("tasks/b.yaml", doc("b"))
            head = remote.commit()
            restarted = source_for(remote, state, clock, path="tasks")
            assert synced(restarted), restarted.status().last_error
            assert restarted.status().applied_revision == head
            assert operator.poll() is None
        finally:
            operator.kill()


def test_a_git_call_of_crontask_is_known_by_its_mark_as_by_git_dir() -> None:
    markers = gitmaintenance._Markers(Path("/state/repo.git"))
    checkout = ["/usr/bin/git", "-c", "gc.auto=0", *gitmaintenance.marked(Path("/state/repo.git"))]
    checkout += ["--literal-pathspecs", "checkout", "--quiet"]
    older = ["/usr/bin/git", "-c", "gc.auto=0", "--git-dir=/state/repo.git", "fetch"]
    for shape in (checkout, older):
        assert gitmaintenance._runs_git([os.fsencode(arg) for arg in shape], markers), shape
    others = [
        ["git", "-c", "crontask.repository=/state/repo.git/x", "checkout"],
        ["git", "-c", "gc.auto=0", "log", "crontask.repository=/state/repo.git"],
        ["git", "-C", "/state/worktrees/abc", "checkout"],
    ]
    for other in others:
        assert not gitmaintenance._runs_git([os.fsencode(arg) for arg in other], markers), other
