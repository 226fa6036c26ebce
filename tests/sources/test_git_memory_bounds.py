"""git's memory is bounded whatever the remote or the repository holds, and git ends by itself
when crontask dies without killing it.

- A smart-HTTP remote (a real server on 127.0.0.1, the real ``git``) whose ref advertisement
  never ends: git-remote-http kept all of it (some 600 MB/s) until the timeout, and for ever
  once crontask was killed hard. Now every git runs under an address-space limit (inherited by
  its helpers): it stops at the limit, with an error that says so, long before the timeout
  (which is two minutes here: the error is the memory one, not a timeout).
- crontask killed hard (``SIGKILL``) while git reads a remote that trickles an endless
  advertisement (fast enough for git's own stall deadline, too slow for the memory limit):
  git and its helpers end by themselves a little after the timeout.
- Collection (``git gc --auto``) with git's own bounds: a blob over ``core.bigFileThreshold`` is
  stored without a delta search (which loaded whole blobs, ten at a time on each of two threads:
  26 times a blob's size for 51 pushes of one compressible blob each), while small files are
  still stored as deltas.
- A collection that fails is not tried again at every sync: it backs off.
"""

from __future__ import annotations

import http.server
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitprocess import GitRunner
from reconciler.sources.gitrepo import GitRepo, Redactor, git_env
from tests.sources.test_fault_git import live_processes_mentioning
from tests.sources.test_git import Clock, Remote, doc, git, isolated_git, remote, synced

__all__ = ["isolated_git", "remote"]  # fixtures shared with test_git

MiB = 1024 * 1024
LIMIT = 192 * MiB  # enough for git's own start (some 30 MiB), small for a test machine
ORPHAN_TIMEOUT = 2.0  # crontask's, in the orphan test: git ends by itself soon after


class EndlessAdvertisement:
    """Answers ``info/refs`` with the start of a smart-HTTP advertisement that never ends:
    1 MiB at a time as fast as git reads, or (``trickle``) 4 KiB every 20 ms."""

    def __init__(self, *, trickle: bool) -> None:
        self.connected = threading.Event()
        self.stopped = threading.Event()
        remote = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
                self.end_headers()
                remote.connected.set()
                chunk = b"0" * (4096 if trickle else MiB)
                try:
                    self.wfile.write(b"001e# service=git-upload-pack\n0000")
                    while not remote.stopped.wait(0.02 if trickle else 0):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass  # git was stopped

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,))
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/endless.git"

    def close(self) -> None:
        self.stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _serve(trickle: bool) -> Iterator[EndlessAdvertisement]:
    served = EndlessAdvertisement(trickle=trickle)
    try:
        yield served
    finally:
        served.close()
        for pid in live_processes_mentioning(served.url):  # a git that outlived the test
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def endless() -> Iterator[EndlessAdvertisement]:
    yield from _serve(trickle=False)


@pytest.fixture
def trickle() -> Iterator[EndlessAdvertisement]:
    yield from _serve(trickle=True)


def test_an_endless_advertisement_stops_git_at_its_memory_limit_with_an_error_saying_so(
    endless: EndlessAdvertisement, tmp_path: Path
) -> None:
    options = GitOptions(endless.url, timeout=120, memory_limit=LIMIT)
    source = GitSource(options, tmp_path / "state", clock=Clock())
    assert not synced(source)
    error = source.status().last_error or ""
    assert error.startswith("fetch failed: git ran out of its memory limit (192 MiB)"), error
    assert "--git-memory-limit" in error
    assert "timed out" not in error


def test_the_memory_limit_reaches_what_git_starts(tmp_path: Path) -> None:
    """git-remote-http, index-pack, pack-objects: every helper inherits the limit (here, a
    shell started by git as a command alias)."""
    runner = GitRunner(env=git_env("file:///x"), timeout=30, redact=str, memory_limit=LIMIT)
    said = runner.run_bytes(["-c", "alias.limit=!ulimit -v", "limit"], max_stdout=100)
    assert int(said) == LIMIT // 1024  # KiB


CRONTASK = """
import sys
from reconciler.sources.gitprocess import GitRunner
from reconciler.sources.gitrepo import git_env
url, timeout = sys.argv[1], float(sys.argv[2])
runner = GitRunner(env=git_env(url), timeout=timeout, redact=str)
runner.run_bytes(["ls-remote", url], max_stdout=1 << 20)
"""


def _ended(pid: int, within: float) -> bool:
    """Whether process ``pid`` (not a child of ours) ends within ``within`` seconds: waited on
    through a pidfd, which becomes readable when the process exits."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], within)
        return bool(readable)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_git_left_behind_by_a_crontask_killed_hard_ends_by_itself_after_the_timeout(
    trickle: EndlessAdvertisement,
) -> None:
    crontask = subprocess.Popen(
        [sys.executable, "-c", CRONTASK, trickle.url, str(ORPHAN_TIMEOUT)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        assert trickle.connected.wait(30), "git never connected"
    finally:
        crontask.kill()  # before its own timeout: nobody is left to kill git
        crontask.wait()
    orphans = live_processes_mentioning(trickle.url)
    assert orphans  # git and git-remote-http outlived crontask...
    started = time.monotonic()
    for pid in orphans:  # ...not for ever: some seconds past the timeout
        assert _ended(pid, max(60 - (time.monotonic() - started), 0)), f"{pid} still runs"


# -- collection ------------------------------------------------------------------------------


def _big_similar_blobs(remote: Remote, size: int) -> None:
    """Two commits of one file of ``size`` bytes that differ in their first line only (what
    git's delta search would store as one blob and a tiny delta), and small files that differ
    a little, as task files do."""
    for n in range(2):
        (remote.work / "big.bin").write_bytes(b"version %d\n" % n + bytes(size))
        remote.write("tasks/a.yaml", doc("a") + "# padding\n" * 200 + f"# {n}\n")
        remote.commit()


def _deltas(repo: Path) -> list[tuple[int, bool]]:
    """For each blob of the repository's packs: its size, and whether it is stored as a
    delta (``git verify-pack -v`` lists a delta's depth and base after its sizes)."""
    found: list[tuple[int, bool]] = []
    for index in (repo / "objects" / "pack").glob("*.idx"):
        for line in git("verify-pack", "-v", str(index), cwd=repo).splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[1] == "blob":
                found.append((int(fields[2]), len(fields) > 5))
    return found


def test_collection_stores_big_blobs_without_a_delta_search_and_small_ones_as_deltas(
    remote: Remote, tmp_path: Path
) -> None:
    big = 17 * MiB  # over core.bigFileThreshold (16 MiB); a delta search loaded it whole
    _big_similar_blobs(remote, big)
    options = GitOptions(remote.url, path="tasks")  # big.bin is not checked out
    source = GitSource(options, tmp_path / "state", clock=Clock())
    assert synced(source)
    repo = source.base / "repo.git"
    runner = GitRepo(repo, env=git_env(remote.url), timeout=60, redact=Redactor())
    runner.run(["gc", "--quiet"])  # what `gc --auto` does once its thresholds are passed
    blobs = _deltas(repo)
    big_ones = [delta for size, delta in blobs if size >= big]
    small_ones = [delta for size, delta in blobs if size < 64 * 1024]
    assert len(big_ones) == 2
    assert not any(big_ones)  # stored whole: never loaded for a delta search
    assert any(small_ones)  # task files still deltas of each other


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("pack.threads", "1"),
        ("pack.windowmemory", "64m"),
        ("pack.deltacachesize", "16m"),
        ("core.bigfilethreshold", "16m"),
        ("core.packedgitwindowsize", "32m"),
        ("core.packedgitlimit", "256m"),
    ],
)
def test_every_git_call_has_git_s_own_memory_bounds(name: str, value: str) -> None:
    runner = GitRunner(env=git_env("file:///x"), timeout=30, redact=str)
    said = runner.run_bytes(["config", "--get", name], max_stdout=100)
    assert said.decode().strip() == value


def test_a_failed_collection_backs_off(
    remote: Remote, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    clock = Clock()
    source = GitSource(GitOptions(remote.url, interval=1), tmp_path / "state", clock=clock)
    assert synced(source)
    repo = source.base / "repo.git"
    git("config", "gc.autoPackLimit", "many", cwd=repo)  # gc fails on it; fetch never reads it
    caplog.set_level(logging.WARNING, logger="crontask.sources.git")

    def collections_failed() -> int:
        return sum(r.getMessage() == "git collection failed" for r in caplog.records)

    synced(source)
    assert collections_failed() == 1
    retry = caplog.records[-1].__dict__["fields"]["retry_in"]
    for _ in range(3):  # syncs before the retry is due: no collection
        clock.advance(1)
        synced(source)
    assert collections_failed() == 1
    clock.advance(retry)
    synced(source)
    assert collections_failed() == 2
    assert caplog.records[-1].__dict__["fields"]["retry_in"] == 2 * retry  # doubled
    assert source.status().last_error is None  # no failure of the sync
