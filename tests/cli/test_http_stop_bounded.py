"""``crontask run --listen``'s stop gives the API's requests in flight at most
``cli/api_server.py``'s ``HTTP_STOP_WAIT``, then cuts them: uvicorn's graceful stop otherwise
waits for each with no bound of its own (a request queued at the API's door waits 30 s for a
place, then is served), beyond the stop budget the Deployment's grace is sized for
(tests/deploy/test_manifest_stop_budget.py). A request cut so is one access line, no traceback.

A real ``crontask run`` with ``HTTP_STOP_WAIT`` set to a second (the process is started by a
line of Python that sets it, then runs crontask's ``main``), and a request that cannot finish
in time: a POST whose body trickles (a known caller's body has 10 s, ``BODY_SECONDS``, to come
whole, far more than the second)."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from reconciler.api.door import RequestLog
from reconciler.cli import connections
from reconciler.cli.api_server import _UPGRADE_WARNINGS
from tests.helpers import NEVER_DUE, wait_for

STOP_WAIT = 1  # seconds: HTTP_STOP_WAIT in the process started here
# The rest of the stop (no runs, nothing to flush) and Python's exit, on a busy machine.
REST_OF_THE_STOP = 4.0

SET_AND_RUN = (
    "import sys; import reconciler.cli.api_server as s; "
    f"s.HTTP_STOP_WAIT = {STOP_WAIT}; "
    "from reconciler.cli.main import main; sys.argv[0] = 'crontask'; main()"
)


def _started(folder: Path) -> tuple[subprocess.Popen[bytes], Path, tuple[str, int]]:
    (folder / "tasks").mkdir()
    (folder / "tasks" / "t.yaml").write_text(NEVER_DUE)
    log = folder / "log"
    argv = [sys.executable, "-c", SET_AND_RUN, "run", "tasks", "--state-dir", "state"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*argv, "--listen", "127.0.0.1:0"], cwd=folder, stdout=out, stderr=out
        )
    line = wait_for(
        "the api listening line",
        lambda: re.search(r'msg="api listening" address=(\S+)', log.read_text()),
    )
    host, _, port = line.group(1).rpartition(":")
    return proc, log, (host, int(port))


def _healthy(address: tuple[str, int]) -> bool:
    with socket.create_connection(address, timeout=10) as probe:
        probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return probe.recv(64).startswith(b"HTTP/1.1 200")


def test_a_stop_cuts_a_request_in_flight_after_the_http_stop_wait(tmp_path: Path) -> None:
    proc, log, address = _started(tmp_path)
    trickler = socket.create_connection(address, timeout=10)
    try:
        # A task's creation whose body never comes whole: held in flight until its body's
        # deadline, 10 s, unless the stop cuts it.
        trickler.sendall(
            b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        # Answered after the trickler's head was read (the server reads in the order the bytes
        # came): its request is in flight.
        assert _healthy(address)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        proc.wait(60)
        took = time.monotonic() - signalled
        answer = trickler.recv(4096)  # sent before the process ended
    finally:
        trickler.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)
    said = log.read_text()
    assert proc.returncode == 0, said
    assert took < STOP_WAIT + REST_OF_THE_STOP, (took, said)
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert b"crontask is stopping: it may have been done; look before asking again" in answer
    # The request cut is one access line, not a traceback nor a 500.
    assert "Traceback" not in said, said
    cut = [ln for ln in said.splitlines() if "msg=request method=POST path=/api/v1/tasks" in ln]
    assert len(cut) == 1, said
    assert "status=503" in cut[0], said
    assert "level=error" not in said, said


class _Begun:
    """An answer begun (its head and a first part sent) that never ends: a slow reader's."""

    def __init__(self) -> None:
        self.begun = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        self.begun.set()
        await asyncio.Event().wait()


class _Logged(logging.Handler):
    """Sets ``done`` once the API has logged a request's line."""

    def __init__(self) -> None:
        super().__init__()
        self.done = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "crontask.api" and record.getMessage() == "request":
            self.done.set()


def test_an_answer_begun_and_cut_by_the_stop_drops_its_connection_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cut of an answer already begun (no 503 can follow its 200) ends its connection:
    the client sees it end short, and the log has the request's line and no error (uvicorn's,
    for an app that returns mid-answer, or its traceback for the cancellation). Real uvicorn
    configured as ``cli/api_server.py`` does, its log filtered so, on a loop that goes on after
    the server as crontask's does (the rest of the stop)."""
    caplog.set_level(logging.INFO)
    app = _Begun()
    config = uvicorn.Config(
        RequestLog(app),
        host="127.0.0.1",
        port=0,
        lifespan="off",
        http=connections.guarded(64),
        timeout_graceful_shutdown=STOP_WAIT,
        log_config=None,
    )
    server = uvicorn.Server(config)
    logged = _Logged()
    logging.getLogger("crontask.api").addHandler(logged)
    logging.getLogger("uvicorn.error").addFilter(_UPGRADE_WARNINGS)

    async def serve_then_stop_the_rest() -> None:
        await server.serve()
        deadline = time.monotonic() + 10
        while not logged.done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(serve_then_stop_the_rest(),))
    thread.start()
    try:
        wait_for("uvicorn to start", lambda: server.started or None)
        address = server.servers[0].sockets[0].getsockname()[:2]
        with socket.create_connection(address, timeout=10) as client:
            client.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert app.begun.wait(10)
            server.should_exit = True
            got = b""
            while chunk := client.recv(4096):  # ends: the connection is closed
                got += chunk
    finally:
        server.should_exit = True
        thread.join(30)
        logging.getLogger("crontask.api").removeHandler(logged)
        logging.getLogger("uvicorn.error").removeFilter(_UPGRADE_WARNINGS)
    assert got.startswith(b"HTTP/1.1 200 "), got
    assert got.endswith(b"part\r\n"), got  # the chunk sent, and no end: cut short
    assert logged.done.is_set()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, errors
