"""A blank ``--git-token-file`` (a Secret caught mid-rotation, a file truncated by its writer)
is an error naming the file, as an empty ``--git-token-env`` is: it made an anonymous fetch,
which a private remote answered with git's misleading "could not read Username ... terminal
prompts disabled", and a public one with whatever it shows anybody."""

from __future__ import annotations

import functools
import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitcredentials import credentials_of
from reconciler.sources.gitprocess import GitError
from tests.sources.test_git import Clock, isolate_git

URL = "https://git.example.com/org/tasks.git"


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.mark.parametrize("text", ["", "\n", " \t\r\n"])
def test_a_blank_token_file_is_an_error_naming_it(tmp_path: Path, text: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(text)
    token_file.chmod(0o600)  # as a secret file should be: only the blank content is at issue
    with pytest.raises(GitError) as raised:
        credentials_of(URL, token_file, None)
    assert str(raised.value) == f"token file {token_file} is empty"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ssh://git@git.example.com/org/tasks.git", None),
        ("file:///srv/tasks.git", None),
        ("https://bot:pw@git.example.com/org/tasks.git", ("bot", "pw")),
    ],
)
def test_a_blank_token_file_a_url_does_not_need_is_a_warning(
    tmp_path: Path, url: str, expected: tuple[str, str] | None, caplog: pytest.LogCaptureFixture
) -> None:
    """What an empty file meant before: a chart that always mounts an optional token must not
    stop the sync of an ssh or local remote, nor of a URL with its own password."""
    caplog.set_level(logging.WARNING, logger="crontask.sources.git")
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    token_file.chmod(0o600)
    for _ in range(2):
        credentials = credentials_of(url, token_file, None)
        got = None if credentials is None else (credentials.username, credentials.password)
        assert got == expected
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"token file {token_file} is empty; this URL does not use it"]


def test_a_token_file_with_a_token_gives_it(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-1\n")
    token_file.chmod(0o600)
    credentials = credentials_of(URL, token_file, None)
    assert credentials is not None
    assert (credentials.username, credentials.password) == ("x-access-token", "tok-1")


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A private remote: it refuses every request, and records that one came."""

    def __init__(self, seen: list[str], *args: Any) -> None:
        self.seen = seen
        super().__init__(*args)

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def private_remote() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Recorder, seen))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/tasks.git", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_sync_with_a_blank_token_file_fetches_nothing(
    private_remote: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = private_remote
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    token_file.chmod(0o600)
    source = GitSource(GitOptions(url, token_file=token_file), tmp_path / "state", clock=Clock())
    assert source.sync() is False
    assert source.status().last_error == (
        f"fetch failed: token file {token_file} is empty (retrying in 60s)"
    )
    assert seen == []  # no anonymous request went out
