"""Fault: a git remote that hangs mid-fetch, against the git source and the real ``git``.

- Over smart HTTP (``tests.faults.git_remote``: the real ``git http-backend`` behind a server
  that stops answering once the client asks for objects): each fetch is killed at the timeout
  with its whole process group (``git-remote-http`` included, which would otherwise wait on
  the silent socket for ever), the error is in the status, the revision in force and its tasks
  stay, the retries back off up to their cap, and the next fetch after the remote recovers
  applies the new commit.
- Over ssh, with a helper that leaves git's process group (``setsid``) and holds git's stderr,
  as ssh's ``ControlPersist`` master does: a hanging fetch still ends at the timeout, instead
  of reading the pipe for as long as the helper lives, and a fetch that succeeded is not held
  open (and failed) by it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from tests.faults import git_remote
from tests.faults.git_remote import StallingRemote
from tests.helpers import wait_for
from tests.sources.test_git import (
    Clock,
    Remote,
    clock,
    doc,
    isolated_git,
    remote,
    schedules,
    state,
    synced,
)

__all__ = ["clock", "isolated_git", "remote", "state"]  # fixtures shared with test_git

TIMEOUT = 1.0


@pytest.fixture
def stalling(remote: Remote) -> Iterator[StallingRemote]:
    served = StallingRemote(remote.bare)
    yield served
    served.close()


def live_processes_mentioning(text: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state_ = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in cmdline and state_ not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def test_a_fetch_hanging_mid_way_times_out_keeps_the_revision_and_backs_off(
    remote: Remote, stalling: StallingRemote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    good = remote.commit()
    source = GitSource(
        GitOptions(stalling.url, interval=1, timeout=TIMEOUT, max_backoff=4), state, clock=clock
    )
    assert synced(source)
    assert source.status().applied_revision == good

    stalling.stalled.set()
    remote.write("b.yaml", doc("b"))
    newer = remote.commit()
    retries = []
    for failures in (1, 2, 3):
        clock.advance(source.status().next_retry_in)
        assert synced(source) is False
        status = source.status()
        assert status.last_error is not None
        assert status.last_error.startswith(f"fetch failed: git fetch timed out after {TIMEOUT:g}s")
        assert status.consecutive_failures == failures
        assert status.applied_revision == good
        retries.append(status.next_retry_in)
        # The whole group is gone: git, and git-remote-http that was waiting on the socket.
        assert live_processes_mentioning(stalling.url) == []
    assert stalling.stalls == 3  # each fetch got as far as asking for objects
    assert retries == [2, 4, 4]  # doubled, then capped at max_backoff
    assert set(schedules(source)) == {"default/a"}  # the last good revision stays in force

    stalling.stalled.clear()
    clock.advance(source.status().next_retry_in)
    assert synced(source)
    status = source.status()
    assert (status.applied_revision, status.last_error, status.consecutive_failures) == (
        newer,
        None,
        0,
    )
    assert set(schedules(source)) == {"default/a", "default/b"}


def partial_objects(source: GitSource) -> list[Path]:
    objects = source.base / "repo.git" / "objects"
    return [*objects.glob("*/tmp_*"), *objects.glob("pack/.tmp-*")]


def test_a_fetch_cut_mid_pack_leaves_no_partial_objects(
    remote: Remote,
    stalling: StallingRemote,
    state: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fetch killed at the timeout while the pack streams in leaves git's partial pack
    behind; on every retry another one, until the disk is full. None is left."""
    remote.write("a.yaml", doc("a"))
    good = remote.commit()
    source = GitSource(GitOptions(stalling.url, timeout=TIMEOUT), state, clock=clock)
    assert synced(source)

    # Enough objects for git to stream them into a pack (tmp_pack_*), not loose objects, and
    # half of the pack sent before the remote goes silent.
    for n in range(150):
        remote.write(f"noise/{n}.bin", secrets.token_hex(4096))
    remote.commit()
    monkeypatch.setattr(git_remote, "_HEAD_BYTES", 512 * 1024)
    stalling.stalled.set()
    for _ in range(2):
        assert synced(source) is False
        status = source.status()
        assert status.last_error is not None
        assert status.last_error.startswith(f"fetch failed: git fetch timed out after {TIMEOUT:g}s")
        assert partial_objects(source) == []
    assert stalling.stalls == 2
    assert status.applied_revision == good

    # One left by a crash mid-fetch is gone after the next fetch too.
    left = source.base / "repo.git" / "objects" / "pack" / "tmp_pack_crashed"
    left.write_bytes(b"PACK")
    stalling.stalled.clear()
    assert synced(source)
    assert partial_objects(source) == []


def test_locks_left_by_a_killed_fetch_do_not_stop_later_ones(
    remote: Remote, state: Path, clock: Clock
) -> None:
    """git killed while it updates refs (at the timeout, or with crontask) leaves its lock
    files, and every later fetch would fail "cannot lock ref" until someone deleted them."""
    remote.write("a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = GitSource(GitOptions(remote.url), state, clock=clock)
    assert synced(source)
    repo = source.base / "repo.git"
    for left in ("refs/crontask/HEAD.lock", "packed-refs.lock", "HEAD.lock"):
        (repo / left).write_text("")
    remote.write("a.yaml", doc("a", "2 * * * *"))
    newer = remote.commit()
    assert synced(source), source.status().last_error
    assert source.status().applied_revision == newer
    assert schedules(source) == {"default/a": "2 * * * *"}
    assert [*repo.rglob("*.lock")] == []


def test_sigterm_during_a_first_clone_that_hangs_stops_at_once(
    remote: Remote, stalling: StallingRemote, tmp_path: Path
) -> None:
    """No revision on disk yet (a new pod): crontask is not started until the first clone
    ends, and a remote that hangs held SIGTERM back for the whole --git-timeout (longer than
    a pod's termination grace)."""
    remote.write("a.yaml", doc("a"))
    remote.commit()
    stalling.stalled.set()
    git = ["--git", stalling.url, "--git-timeout", "300s"]
    crontask = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "run",
            *git,
            "--state-dir",
            "state",
            "--listen",
            "off",
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for("the first clone to hang", lambda: stalling.stalls >= 1 or None)
        crontask.send_signal(signal.SIGTERM)
        _, stderr = crontask.communicate(timeout=30)
    finally:
        crontask.kill()
        crontask.wait()
    assert crontask.returncode == 0, stderr
    assert "stopped during start-up" in stderr
    assert "crontask started" not in stderr


def test_cancel_kills_a_hanging_fetch_and_records_no_failure(
    remote: Remote, stalling: StallingRemote, state: Path, clock: Clock
) -> None:
    """What a shutdown does: a fetch in flight from a hanging remote is killed at once, not
    waited for up to the timeout, and the stop is not reported as the remote's failure."""
    remote.write("a.yaml", doc("a"))
    good = remote.commit()
    source = GitSource(GitOptions(stalling.url, timeout=60), state, clock=clock)
    assert synced(source)
    stalling.stalled.set()
    remote.write("b.yaml", doc("b"))
    remote.commit()
    done = threading.Event()

    def sync() -> None:
        source.sync()
        done.set()

    threading.Thread(target=sync, daemon=True).start()
    deadline = time.monotonic() + 20
    while stalling.stalls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stalling.stalls == 1  # the fetch hangs mid-way
    source.cancel()
    assert done.wait(20)  # not the 60 s timeout
    assert live_processes_mentioning(stalling.url) == []
    status = source.status()
    assert (status.applied_revision, status.last_error, status.consecutive_failures) == (
        good,
        None,
        0,
    )
    assert source.sync() is False  # and later syncs end at once
    assert stalling.stalls == 1


class EscapingSsh:
    """An ``ssh`` first on PATH that starts a helper in a session of its own (out of git's
    process group) holding git's stderr, as ssh's ``ControlPersist`` master does, then either
    never answers (``serve=False``) or runs the remote command here, on this machine, so that
    the fetch succeeds (``serve=True``). The helper is killed at teardown."""

    def __init__(self, tmp_path: Path, serve: bool) -> None:
        self.serve = serve
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        self.pidfile = tmp_path / "helper.pid"
        # This test's own sleeps: another test running meanwhile (pytest -n) may start a
        # `sleep 300` of its own, which is none of this sync's business.
        self.sleep = f"sleep 300.{secrets.randbelow(10**6):06d}"
        then = 'for last; do :; done; exec sh -c "$last"' if serve else f"exec {self.sleep}"
        ssh = bin_dir / "ssh"
        ssh.write_text(
            "#!/bin/sh\n"
            f"setsid sh -c 'echo $$ > {self.pidfile}.tmp; mv {self.pidfile}.tmp {self.pidfile};"
            f" exec {self.sleep}' &\n"
            f"while [ ! -e {self.pidfile} ]; do sleep 0.01; done\n"
            f"{then}\n"
        )
        ssh.chmod(stat.S_IRWXU)
        self.path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"

    def helper(self) -> int:
        return int(self.pidfile.read_text())

    def kill(self) -> None:
        if self.pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.helper(), signal.SIGKILL)


@pytest.fixture(params=[False, True], ids=["hanging", "answering"])
def escaping_ssh(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EscapingSsh]:
    ssh = EscapingSsh(tmp_path, serve=request.param)
    monkeypatch.setenv("PATH", ssh.path)
    yield ssh
    ssh.kill()


def test_a_helper_that_leaves_the_group_cannot_hold_a_sync_open(
    escaping_ssh: EscapingSsh, remote: Remote, state: Path, clock: Clock
) -> None:
    """Hanging: the sync ends at the timeout, not when the helper lets go of the pipe.
    Answering: the fetch succeeded, so the sync does too, at once, instead of reading the pipe
    until the timeout and reporting a failure."""
    remote.write("a.yaml", doc("a"))
    sha = remote.commit()
    timeout = 30.0 if escaping_ssh.serve else 2.0
    url = f"ssh://127.0.0.1{remote.bare}"
    source = GitSource(GitOptions(url, timeout=timeout), state, clock=clock)
    done = threading.Event()

    def sync() -> None:
        source.sync()
        done.set()

    threading.Thread(target=sync, daemon=True).start()
    # Not a timing assertion: a sync held by the helper would wait for its 300 s or, when the
    # remote answered, for the whole 30 s timeout, and then fail.
    assert done.wait(10 if escaping_ssh.serve else timeout + 20)
    left = live_processes_mentioning(escaping_ssh.sleep)
    assert left == [escaping_ssh.helper()]  # out of reach
    status = source.status()
    if escaping_ssh.serve:
        assert (status.last_error, status.applied_revision) == (None, sha)
        source.refresh()
        assert set(schedules(source)) == {"default/a"}
    else:
        assert status.last_error is not None
        assert status.last_error.startswith(f"fetch failed: git fetch timed out after {timeout:g}s")
