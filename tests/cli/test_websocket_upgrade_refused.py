"""crontask serves no WebSocket: a request to upgrade to one is answered as the plain HTTP
request it also is, and its connection is counted, and let go, like any other.

uvicorn upgrades such a request by itself wherever a WebSocket library (``websockets`` or
``wsproto``) is importable: an image built with ``uvicorn[standard]``, a host with Debian's
``python3-websockets``. It then hands the connection to its WebSocket protocol, so the HTTP
protocol that counts connections per address (``cli/connections.py``) never hears of its end:
each upgrade, answered 403 and closed, stayed counted for good, and once one address's share
was taken by them, every new connection from it was refused, ``/healthz`` included (the
kubelet's probes from the node's address, an ingress's). Without such a library uvicorn never
upgrades, so that test has nothing to show and is skipped, saying why; it runs wherever one is
importable (``PYTHONPATH`` counts: ``pip install --target DIR wsproto``).

Without a library, uvicorn wrote two warnings for each such request (the second advising to
install one); any client could fill the log with them. That one runs everywhere."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import connections
from tests.e2e.conftest import Crontask
from tests.e2e.test_open_files import open_files_of

WEBSOCKET_LIBRARY = next(
    (name for name in ("websockets", "wsproto") if importlib.util.find_spec(name) is not None),
    None,
)
OK = b"HTTP/1.1 200 OK"


@contextlib.contextmanager
def crontask_run(folder: Path) -> Iterator[Crontask]:
    """``crontask run`` with 256 open files: it keeps 64 connections, 16 from one address."""
    (folder / "tasks").mkdir()
    limited = ["sh", "-c", 'ulimit -n 256 && exec "$@"', "sh"]
    app = Crontask(folder, folder / "tasks", [], wrapper=limited)
    try:
        app.start()
        yield app
    finally:
        app.stop()


def upgrade(port: int) -> bytes:
    """A browser's WebSocket handshake to ``/healthz``: the head of the answer, and then this
    side closes, as a client whose upgrade was not taken does."""
    head = (
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, f"closed after {answer!r}"
            answer += chunk
    return answer


def probe(port: int) -> bytes:
    """``GET /healthz`` on a new connection, read until the server closes it (``Connection:
    close``: the server's end of it, and its count, are over before the next one opens). An
    empty answer: the connection was refused (closed at once) or reset."""
    head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(head.encode())
            while chunk := sock.recv(4096):
                answer += chunk
    except ConnectionResetError:
        pass
    return answer


@pytest.mark.skipif(
    WEBSOCKET_LIBRARY is None,
    reason="neither websockets nor wsproto is importable: uvicorn would upgrade nothing here, "
    "so there is no leak to show (install one in the venv to run this test)",
)
def test_upgrades_leave_an_address_its_share_of_connections(tmp_path: Path) -> None:
    with crontask_run(tmp_path) as app:
        assert app.proc is not None
        limit = connections.connection_limit(open_files_of(app.proc.pid)[0])
        share = connections.peer_limit(limit)
        assert share == 16
        upgraded = [upgrade(app.port) for _ in range(2 * share)]
        # Each new connection past the share may drop one waiting for a head: the upgrades'
        # (uvicorn's WebSocket protocol leaves them "waiting" until their head's deadline),
        # until none is left, then it is refused. More than a share of probes shows which.
        probes = [probe(app.port) for _ in range(2 * share)]
    refused = [n for n, answer in enumerate(probes) if not answer.startswith(OK)]
    assert not refused, f"/healthz refused from probe {refused[0]} on:\n{app.log()[-3000:]}"
    # The handshake is answered as the GET it also is: nothing was upgraded.
    assert {answer.split(b"\r\n", 1)[0] for answer in upgraded} == {OK}
    assert "too many from one address" not in app.log()


def test_an_upgrade_is_answered_as_a_plain_request_and_not_logged_twice(tmp_path: Path) -> None:
    with crontask_run(tmp_path) as app:
        upgraded = [upgrade(app.port) for _ in range(3)]
        assert probe(app.port).startswith(OK)
    assert {answer.split(b"\r\n", 1)[0] for answer in upgraded} == {OK}
    text = app.log()
    assert "Unsupported upgrade request" not in text, text
    assert "WebSocket library" not in text, text
