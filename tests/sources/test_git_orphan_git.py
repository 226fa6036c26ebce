"""A git an earlier crontask left working on the repository (killed hard mid-fetch, its git
lives on under ``timeout``) is stopped before the next crontask's first fetch: run beside it,
it updated the ref that fetch was updating, and one sync failed "cannot lock ref
'refs/crontask/HEAD': is at X but expected Y"; its locks were deleted under it. Another
program's git there is not crontask's to stop: a script without job control runs in its
launcher's group, which a kill of that group took down with it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.sources import gitmaintenance
from reconciler.sources.gitbounds import DEFAULT_MEMORY_LIMIT, bounded, tools
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


@contextmanager
def running(args: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` in a session (and group) of its own, as crontask runs git; killed at the end."""
    process = subprocess.Popen(args, stdin=subprocess.PIPE, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


# The first sync, by another process: the earlier crontask.
EARLIER = """
import sys
from pathlib import Path
from reconciler.sources.git import GitOptions, GitSource
source = GitSource(GitOptions(sys.argv[1]), Path(sys.argv[2]))
assert source.sync(), source.status().last_error
"""


def stuck_fetch(repo: Path, remote: Remote) -> list[str]:
    """A fetch into ``repo`` as crontask's git names it, that waits on its upload-pack (a
    remote that is slow to answer): it stays until killed."""
    pack = "sleep 600 #"  # run by a shell; the comment drops the path git adds
    into = "+refs/heads/*:refs/orphan/*"
    return ["git", f"--git-dir={repo}", "fetch", "--upload-pack", pack, remote.url, into]


def in_group(group: int, wanted: Callable[[list[bytes]], bool]) -> bool:
    """Whether a process of process group ``group`` other than its leader has a command line
    that is ``wanted``."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == group:
            continue
        try:
            if os.getpgid(int(name)) != group:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as file:
                args = file.read().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if wanted(args):
            return True
    return False


def until_in_group(group: int, wanted: Callable[[list[bytes]], bool]) -> None:
    """Wait, up to a deadline, until ``in_group``: the process looked for is running."""
    deadline = time.monotonic() + 30
    while not in_group(group, wanted):
        assert time.monotonic() < deadline, f"no such process in group {group}"
        time.sleep(0.02)


def upload_pack(args: list[bytes]) -> bool:
    """The upload-pack ``stuck_fetch`` has git start (``sleep``, by a shell or exec'd)."""
    return any(arg.startswith(b"sleep") for arg in args)


def earlier_crontask(remote: Remote, state: Path, clock: Clock) -> Path:
    """The repository an earlier crontask (another process) synced once; the remote moves on
    since."""
    remote.write("a.yaml", doc("a"))
    remote.commit()
    earlier = [sys.executable, "-c", EARLIER, remote.url, str(state)]
    subprocess.run(earlier, check=True, timeout=60)
    repo: Path = source_for(remote, state, clock).base / "repo.git"
    remote.write("b.yaml", doc("b"))
    return repo


@pytest.mark.parametrize("wrapped", [True, False], ids=["under-timeout", "alone"])
def test_a_restart_stops_the_git_left_running_before_its_first_fetch(
    remote: Remote, state: Path, clock: Clock, wrapped: bool
) -> None:
    repo = earlier_crontask(remote, state, clock)
    head = remote.commit()
    fetch = stuck_fetch(repo, remote)
    # As crontask runs it (its deadline and memory limit), or alone where they are missing.
    if wrapped:
        fetch = bounded(fetch, 600.0, tools(os.environ), DEFAULT_MEMORY_LIMIT)

    # A git that works in the repository without naming it so (as a user's own might) is
    # not crontask's: left alone.
    other = ["git", "-C", str(repo), "cat-file", "--batch"]
    with running(fetch) as orphan, running(other) as bystander:
        until_in_group(orphan.pid, upload_pack)  # the orphan is mid-fetch
        restarted = source_for(remote, state, clock)
        assert synced(restarted), restarted.status().last_error
        assert restarted.status().applied_revision == head
        code = orphan.poll()  # ended before the sync returned
        assert code == -signal.SIGKILL, f"orphan: poll() {code}, returncode {orphan.returncode}"
        assert bystander.poll() is None


@pytest.mark.parametrize("linked", ["restart", "orphan"])
def test_the_git_left_running_is_found_whatever_link_names_the_state_directory(
    remote: Remote, state: Path, clock: Clock, linked: str
) -> None:
    """``--state-dir`` named through a link at one start (``/srv/alias/st``) and not at the
    other (``/srv/st``): the git left running, marked with the path as its crontask spelled
    it, was not found, and ran on beside the new crontask's fetch up to its own deadline."""
    alias = state.parent / "alias"
    alias.symlink_to(state.parent, target_is_directory=True)
    repo = earlier_crontask(remote, state, clock)
    head = remote.commit()
    spelled = alias / repo.relative_to(state.parent) if linked == "orphan" else repo
    fetch = ["git", *gitmaintenance.marked(spelled), *stuck_fetch(spelled, remote)[1:]]
    fetch = bounded(fetch, 600.0, tools(os.environ), DEFAULT_MEMORY_LIMIT)
    with running(fetch) as orphan:
        until_in_group(orphan.pid, upload_pack)
        restarted = source_for(remote, alias / state.name if linked == "restart" else state, clock)
        assert synced(restarted), restarted.status().last_error
        assert restarted.status().applied_revision == head
        code = orphan.poll()
        assert code == -signal.SIGKILL, f"orphan: poll() {code}, returncode {orphan.returncode}"


def test_another_programs_git_naming_the_repository_is_left_running(
    remote: Remote, state: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    repo = earlier_crontask(remote, state, clock)
    head = remote.commit()
    marker = os.fsencode(f"--git-dir={repo}")
    # An operator's script without job control: its launcher, its shell and its git (naming
    # the repository as crontask's does) in one group, the launcher's.
    script = f"sleep 600 | git --git-dir={repo} cat-file --batch; echo script went on"
    launcher = [sys.executable, "-c", LAUNCHER, script]
    with running(launcher) as script_launcher:
        until_in_group(script_launcher.pid, lambda args: marker in args)
        restarted = source_for(remote, state, clock)
        with caplog.at_level(logging.WARNING, logger="crontask.sources.git"):
            assert synced(restarted), restarted.status().last_error
        assert restarted.status().applied_revision == head
        assert script_launcher.poll() is None
        assert in_group(script_launcher.pid, lambda args: marker in args)
    warned = [r for r in caplog.records if r.msg.startswith("a git of another program")]
    assert [r.fields["process_groups"] for r in warned] == [[script_launcher.pid]]  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.msg.startswith("git left running")]


# The launcher of an operator's script: it waits on the script, in its own group.
LAUNCHER = """
import subprocess, sys
subprocess.run(["sh", "-c", sys.argv[1]])
"""


def test_a_git_call_is_taken_for_crontasks_in_each_shape_it_is_run_in() -> None:
    marker = b"--git-dir=/state/repo.git"
    markers = gitmaintenance._Markers(Path("/state/repo.git"))
    git = ["/usr/bin/git", "-c", "gc.auto=0", marker.decode(), "fetch"]
    shapes = [
        bounded(git, 60.0, ("/usr/bin/timeout", "/bin/sh"), DEFAULT_MEMORY_LIMIT),
        bounded(git, 60.0, ("/usr/bin/timeout", "/bin/sh"), None),
        bounded(git, 60.0, None, DEFAULT_MEMORY_LIMIT),
    ]
    for shape in shapes:
        assert gitmaintenance._runs_git([os.fsencode(arg) for arg in shape], markers), shape
    others = [
        [sys.executable, "-c", "..."],  # a launcher
        ["sh", "-c", f"git {marker.decode()} log | head"],
        ["/usr/bin/timeout", "-k", "5s", "60s", "sh", "-c", f"git {marker.decode()} log"],
        ["/usr/bin/git", "-c", "gc.auto=0", "--git-dir=/state/repo.git/x", "fetch"],
        # crontask's repository named past git's own options: an alias's argument, say.
        ["git", "--git-dir=/state/other.git", "-c", "alias.x=!f", "x", marker.decode()],
        ["git", "-c", "gc.auto=0", "log", marker.decode()],
        ["git", "-c", marker.decode(), "log"],
    ]
    for other in others:
        assert not gitmaintenance._runs_git([os.fsencode(arg) for arg in other], markers), other
