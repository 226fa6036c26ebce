"""Header values read from files (``valueFrom.file``): off the event loop, bounded, within the
attempt's timeout, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner import http
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from tests.helpers import serve_http

# The Authorization header of each request as the server received it: the run's output shows
# it as *** (runner.http.Secrets).
SEEN: list[str] = []


class Echo(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        SEEN.append(self.headers.get("Authorization", ""))
        body = json.dumps(dict(self.headers.items())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_http(Echo) as url:
        yield url


def attempt(server: str, file: Path | str, timeout: float = 5) -> HttpRun:
    action = HttpAction.model_validate(
        {
            "url": f"{server}/",
            "timeoutSeconds": timeout,
            "headers": [{"name": "Authorization", "valueFrom": {"file": str(file)}}],
        }
    )
    return HttpRun(action, env={})


def test_a_secret_file_is_read_at_each_attempt(server: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    for value in ("Bearer one", "Bearer two"):  # a rotated secret is picked up
        token.write_text(f"{value}\n")
        outcome = asyncio.run(attempt(server, token).run())
        assert SEEN[-1] == value
        assert json.loads(outcome.output)["Authorization"] == "***"


def test_a_fifo_is_refused_without_waiting_for_a_writer(server: str, tmp_path: Path) -> None:
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    done = threading.Event()

    def writer_if_stuck() -> None:
        # Read on the loop, the FIFO blocked it until a writer came (no timeout could fire):
        # one comes after 5 s, so that such a read ends, and fails this test, rather than hang.
        if not done.wait(5):
            with fifo.open("w") as end:
                end.write("Bearer from-the-fifo\n")

    rescue = threading.Thread(target=writer_if_stuck)
    rescue.start()
    try:
        outcome = asyncio.run(attempt(server, fifo).run())
    finally:
        done.set()
        rescue.join()
    assert (outcome.status, outcome.reason, outcome.message) == (
        RunStatus.FAILED,
        "InvalidHeader",
        f"header 'Authorization': {fifo}: not a regular file: not read",
    )


def test_a_device_is_refused_unread(server: str) -> None:
    # /dev/zero would never end; /dev/null stands for every device here (it ends at once).
    outcome = asyncio.run(attempt(server, "/dev/null").run())
    assert (outcome.reason, outcome.message) == (
        "InvalidHeader",
        "header 'Authorization': /dev/null: not a regular file: not read",
    )


def test_a_file_longer_than_a_header_value_is_refused(server: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a" * (32 * 1024 + 1))
    outcome = asyncio.run(attempt(server, token).run())
    assert (outcome.reason, outcome.message) == (
        "InvalidHeader",
        f"header 'Authorization': {token}: larger than 32 KiB: not read",
    )


def test_a_file_that_is_not_text_is_refused_without_quoting_it(server: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"Bearer \xff\xfe s3cret")
    outcome = asyncio.run(attempt(server, token).run())
    assert outcome.reason == "InvalidHeader"
    assert "s3cret" not in outcome.message


def test_a_read_that_hangs_stalls_neither_the_loop_nor_the_attempt(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file on a mount that no longer answers: the read cannot be interrupted. The attempt
    ends at its timeout while the loop goes on; the read is a daemon thread (it cannot hold
    the process at exit), and it is the only one for that file."""
    hung = threading.Event()
    release = threading.Event()
    readers: list[threading.Thread] = []

    def read_hung_mount(path: Path, limit: int) -> bytes:
        readers.append(threading.current_thread())
        hung.set()
        release.wait(30)
        return b"Bearer late"

    monkeypatch.setattr(http, "read_secret_file", read_hung_mount)

    async def main() -> tuple[list[Outcome], int]:
        loop_turns = 0

        async def count_turns() -> None:
            nonlocal loop_turns
            while True:
                await asyncio.sleep(0)
                loop_turns += 1

        counter = asyncio.create_task(count_turns())
        runs = [attempt(server, "/mnt/hung/token", timeout=0.2).run() for _ in range(2)]
        outcomes = await asyncio.wait_for(asyncio.gather(*runs), 10)
        counter.cancel()
        return outcomes, loop_turns

    try:
        outcomes, loop_turns = asyncio.run(main())
    finally:
        release.set()
    assert hung.is_set()
    for outcome in outcomes:
        assert (outcome.status, outcome.reason, outcome.message) == (
            RunStatus.TIMED_OUT,
            "DeadlineExceeded",
            "header 'Authorization': /mnt/hung/token not read within 0.2s",
        )
    assert loop_turns > 10  # the loop ran other work meanwhile
    assert len(readers) == 1  # the second attempt waited for the read under way
    assert readers[0].daemon
