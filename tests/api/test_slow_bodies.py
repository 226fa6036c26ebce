"""A body that trickles in cannot keep the API's places: against the real ``crontask run``,
as many strangers as there are places inside start a ``POST /login`` (public, and its body is
read inside) and then send nothing more. They share :data:`MAX_PUBLIC_BODIES` places: a
signed-in request gets its usual answer at once, while the strangers still hold their sockets
open, and those inside are answered 408 and closed once their body is :data:`BODY_SECONDS`
late."""

from __future__ import annotations

import hashlib
import http.client
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.api.admission import BODY_SECONDS, MAX_ACTIVE, MAX_PUBLIC_BODIES
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


def answered(socks: list[socket.socket], deadline: float) -> dict[socket.socket, bytes]:
    """What each socket the server answered and closed by ``deadline`` received."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, b"")
    done: dict[socket.socket, bytes] = {}
    while len(done) < len(socks) and (left := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(timeout=left):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            chunk = ready.recv(65536)
            if chunk:
                selector.modify(ready, selectors.EVENT_READ, key.data + chunk)
            else:  # closed by the server, answer and all
                selector.unregister(ready)
                done[ready] = key.data
    selector.close()
    return done


def test_slow_bodies_are_408_and_cannot_keep_others_out(app: Crontask) -> None:
    started = time.monotonic()
    slow = [start_slow_login(app) for _ in range(MAX_ACTIVE)]
    try:
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
        try:
            conn.request("GET", "/api/v1/tasks", headers={"Authorization": f"Bearer {TOKEN}"})
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        # The strangers hold at most MAX_PUBLIC_BODIES places: no wait for their deadline.
        waited = time.monotonic() - started
        assert (response.status, waited < BODY_SECONDS) == (200, True), waited
        # Those inside are answered 408 and closed once their body is late; the others wait
        # at the door for a place (and get it, in turn, as these leave).
        answers = answered(slow, started + BODY_SECONDS + SLACK)
        assert len(answers) >= MAX_PUBLIC_BODIES, len(answers)
        assert {a.split(b"\r\n", 1)[0] for a in answers.values()} == {
            b"HTTP/1.1 408 Request Timeout"
        }
        assert all(b"did not arrive in time" in a for a in answers.values())
    finally:
        for sock in slow:
            sock.close()
