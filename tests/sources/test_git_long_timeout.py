"""A ``--git-timeout`` of years still fetches over http(s).

git's own deadline (``http.lowSpeedTime``, a little past the timeout) is a C ``int`` of seconds:
a timeout above some 68 years made it ``bad numeric config value ... out of range``, and every
http(s) fetch failed. The value given to git is capped at the largest it reads (still 68 years).
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.gitprocess import GitRunner
from reconciler.sources.gitrepo import git_env
from tests.sources.test_git import isolated_git

__all__ = ["isolated_git"]  # the fixture shared with test_git

CENTURY = 100 * 365 * 86_400.0


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def dumb_http_remote(tmp_path: Path) -> Iterator[str]:
    """A bare repository of one commit, served by git's dumb HTTP protocol (plain files)."""
    work, bare = tmp_path / "work", tmp_path / "served" / "r.git"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "a.yaml").write_text("a: 1\n")
    git("add", "a.yaml", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "a", cwd=work)
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    git("update-server-info", cwd=bare)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(bare.parent))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/r.git"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_timeout_of_a_century_still_fetches_over_http(dumb_http_remote: str) -> None:
    url = dumb_http_remote
    runner = GitRunner(env=git_env(url), timeout=CENTURY, redact=str)
    # This call's own deadline is short: only git's lowSpeedTime comes from the century.
    refs = runner.run_bytes(["ls-remote", url], max_stdout=1 << 20, timeout=60)
    assert b"refs/heads/main" in refs
