"""The sources page of a real ``crontask run`` shows a git source's error as its characters:
the error quotes what the ssh server wrote on its stderr (git passes it on without
``remote:``), and its terminal escapes and U+202E reached the page raw, where the API, the log
and the CLI escaped them. No browser: the HTML is read over HTTP."""

from __future__ import annotations

import html
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.visible import has_escaped
from tests.e2e.conftest import Crontask
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

SERVER_SAYS = "\x1b]0;pwned\x07\x1b[31mERROR:\x1b[0m repository \u202eevil"
SHOWN = "\\x1b]0;pwned\\x07\\x1b[31mERROR:\\x1b[0m repository \\u202eevil"


def refusing_ssh(tmp_path: Path) -> str:
    """A PATH whose ``ssh`` writes ``SERVER_SAYS`` on its stderr and fails, as a server that
    refuses the repository does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    said = tmp_path / "ssh-says"
    said.write_text(SERVER_SAYS + "\n")
    ssh = bin_dir / "ssh"
    ssh.write_text(f"#!/bin/sh\ncat '{said}' >&2\nexit 1\n")
    ssh.chmod(stat.S_IRWXU)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def git_source(app: Crontask) -> dict[str, Any] | None:
    items = httpx.get(f"{app.server}/api/v1/sources", timeout=10).json()["items"]
    found: dict[str, Any] | None = next((s for s in items if s["kind"] == "git"), None)
    return found if found is not None and found["lastError"] else None


def test_the_sources_page_shows_an_ssh_server_s_words_escaped(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask(
        "--git",
        "ssh://git@127.0.0.1/srv/tasks.git",
        "--git-interval",
        "1h",
        env={"PATH": refusing_ssh(tmp_path)},
    )
    source = wait_for("the fetch's failure", lambda: git_source(app))
    assert SERVER_SAYS in source["lastError"]  # JSON escapes it; the text is the server's

    answer = httpx.get(f"{app.server}/sources", headers={"Accept": "text/html"}, timeout=10)
    assert answer.status_code == 200
    raw = sorted({hex(ord(c)) for c in answer.text if has_escaped(c, keep="\t\n")})
    assert not raw, raw
    assert f"fetch failed: {SHOWN}" in html.unescape(answer.text)
