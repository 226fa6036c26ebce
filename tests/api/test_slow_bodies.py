"""A body that trickles in cannot keep the API's places: against the real ``crontask run``,
as many strangers as there are places inside start a ``POST /login`` (public, and its body is
read inside) and then send nothing more. Each is answered 408 and closed once its body is
:data:`BODY_SECONDS` late, and a signed-in request waiting meanwhile gets its usual answer,
while the strangers still hold their sockets open."""

from __future__ import annotations

import hashlib
import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.api.admission import BODY_SECONDS, MAX_ACTIVE
from tests.e2e.conftest import Crontask

# Ten seconds (the real deadline) at least: `make test-slow`, with the replicas killed with -9;
# test_admission.py holds the same deadline in-process, with a short one.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "operator-token-0123456789"  # noqa: S105
SLACK = 5.0  # a loaded machine's delay on top of the deadline


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Crontask]:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    config = tmp_path / "auth.yaml"
    config.write_text(f"tokens:\n  - {{name: ops, sha256: '{digest}', role: operator}}\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    instance = Crontask(tmp_path, tasks, ["--auth-config", str(config)]).start()
    yield instance
    instance.stop()


def start_slow_login(app: Crontask) -> socket.socket:
    """A sign-in whose headers promise 10 000 bytes of body, of which 6 come."""
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=BODY_SECONDS + SLACK)
    sock.sendall(
        f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 10000\r\n\r\ntoken=".encode()
    )
    return sock


def answer_then_close(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)  # a timeout here raises: the server kept it open
        if not chunk:
            return received
        received += chunk


def test_slow_bodies_are_408_and_cannot_keep_others_out(app: Crontask) -> None:
    started = time.monotonic()
    slow = [start_slow_login(app) for _ in range(MAX_ACTIVE)]
    try:
        time.sleep(0.5)  # every one of them inside, reading its body
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
        try:
            conn.request("GET", "/api/v1/tasks", headers={"Authorization": f"Bearer {TOKEN}"})
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        waited = time.monotonic() - started
        assert (response.status, waited < BODY_SECONDS + SLACK) == (200, True), waited
        deadline = started + BODY_SECONDS + SLACK
        answers = [answer_then_close(sock, deadline) for sock in slow]
        assert {a.split(b"\r\n", 1)[0] for a in answers} == {b"HTTP/1.1 408 Request Timeout"}
        assert all(b"did not arrive in time" in a for a in answers)
    finally:
        for sock in slow:
            sock.close()
