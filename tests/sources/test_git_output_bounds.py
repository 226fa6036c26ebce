"""What git writes costs bounded memory, whatever the remote or the repository makes it write.

- A hostile smart-HTTP remote (a real server on 127.0.0.1, the real ``git``) answers a fetch
  with an endless stream of side-band #2 messages, which git copies to its stderr as
  ``remote: ...`` lines: crontask kept all of it (3.2 GB in 20 s) until the timeout. Now only
  the first ``_MAX_STDERR`` bytes are kept; the rest is read and dropped, so git never blocks.
- ``run_bytes`` reads stdout up to its bound, then stops git and says so: a ``cat-file`` of a
  1 MiB blob asked for a hundred times is an error past the bound, not 100 MiB in memory.
"""

from __future__ import annotations

import http.server
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.gitprocess import GitError
from reconciler.sources.gitrepo import GitRepo, Redactor, git_env
from tests.sources.test_git import Remote, isolated_git, remote

__all__ = ["isolated_git", "remote"]  # fixtures shared with test_git

MiB = 1024 * 1024
SENT = 48 * MiB  # of messages, before the fetch is cancelled
SHA = b"1" * 40


def pkt(data: bytes) -> bytes:
    return b"%04x" % (len(data) + 4) + data


MESSAGE = pkt(b"\x02" + b"x" * 60_000 + b"\n")  # side band 2: a "remote: " line for git


class ChattyRemote:
    """Advertises one ref (protocol v0), then answers the fetch with endless messages."""

    def __init__(self) -> None:
        self.sent = 0
        self.sent_enough = threading.Event()
        self.stopped = threading.Event()
        remote = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def do_GET(self) -> None:
                body = pkt(b"# service=git-upload-pack\n") + b"0000"
                body += pkt(SHA + b" HEAD\0side-band-64k no-progress\n")
                body += pkt(SHA + b" refs/heads/main\n") + b"0000"
                self.send_response(200)
                self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-git-upload-pack-result")
                self.end_headers()
                self.wfile.write(pkt(b"NAK\n"))
                try:
                    while not remote.stopped.is_set():
                        self.wfile.write(MESSAGE)
                        remote.sent += len(MESSAGE)
                        if remote.sent >= SENT:
                            remote.sent_enough.set()
                except OSError:
                    pass  # git was stopped

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,))
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/repo.git"

    def close(self) -> None:
        self.stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def chatty() -> Iterator[ChattyRemote]:
    served = ChattyRemote()
    yield served
    served.close()


def test_endless_remote_messages_are_read_and_dropped(chatty: ChattyRemote, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo.git", env=git_env(chatty.url), timeout=60, redact=Redactor())
    repo.ensure()
    failed: list[GitError] = []

    def fetch() -> None:
        try:
            repo.fetch(chatty.url, ["+HEAD:refs/crontask/HEAD"], "HEAD")
        except GitError as err:
            failed.append(err)

    tracemalloc.start()
    try:
        fetching = threading.Thread(target=fetch)
        fetching.start()
        assert chatty.sent_enough.wait(60), f"the remote sent only {chatty.sent} bytes"
        peak = tracemalloc.get_traced_memory()[1]
        repo.cancel()
        fetching.join(30)
    finally:
        tracemalloc.stop()
    assert not fetching.is_alive()
    assert [str(err) for err in failed] == ["git fetch cancelled"]
    # git read (and said) 48 MiB and more; what this process holds of it is a few chunks.
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB held"


def test_stdout_past_its_bound_stops_git_with_an_error(remote: Remote, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB
    remote.write("big.bin", "")
    (remote.work / "big.bin").write_bytes(blob)
    remote.commit()
    repo = GitRepo(remote.bare, env=git_env(remote.url), timeout=60, redact=Redactor())
    oid = remote.git("rev-parse", "HEAD:big.bin")
    request = f"{oid}\n".encode() * 100  # written as git takes it: more than a pipe holds

    with pytest.raises(GitError, match=r"^git cat-file wrote more than 8388608 bytes$"):
        repo.run_bytes(["cat-file", "--batch"], input=request)

    # Under its bound the same call answers whole.
    out = repo.run_bytes(["cat-file", "--batch"], input=request[: len(oid) + 1])
    assert out == f"{oid} blob {len(blob)}\n".encode() + blob + b"\n"
