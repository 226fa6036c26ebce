"""A git an earlier crontask left working on the repository (killed hard mid-fetch, its git
lives on under ``timeout``) is stopped before the next crontask's first fetch: run beside it,
it updated the ref that fetch was updating, and one sync failed "cannot lock ref
'refs/crontask/HEAD': is at X but expected Y"; its locks were deleted under it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def test_a_restart_stops_the_git_left_running_before_its_first_fetch(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    earlier = [sys.executable, "-c", EARLIER, remote.url, str(state)]
    subprocess.run(earlier, check=True, timeout=60)
    repo = source_for(remote, state, clock).base / "repo.git"
    remote.write("b.yaml", doc("b"))
    head = remote.commit()

    # A git that works in the repository without naming it so (as a user's own might) is
    # not crontask's: left alone.
    other = ["git", "-C", str(repo), "cat-file", "--batch"]
    with running(stuck_fetch(repo, remote)) as orphan, running(other) as bystander:
        restarted = source_for(remote, state, clock)
        assert synced(restarted), restarted.status().last_error
        assert restarted.status().applied_revision == head
        assert orphan.poll() == -signal.SIGKILL  # ended before the sync returned
        assert bystander.poll() is None
