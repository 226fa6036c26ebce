"""/readyz answers within its bound when the database takes connections and never answers,
and probes that pile up meanwhile leave /metrics its threads. It used to wait for the store's
ping with no limit, in the thread pool that the API's and /metrics' handlers share: a
Kubernetes probe timed out instead of being told "store: false", and enough probes starved
every scrape. The real ``crontask run``, the real PostgreSQL of CRONTASK_TEST_POSTGRES_URL
behind a TCP proxy that stops forwarding."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import Crontask
from tests.store.conftest import pg_admin, pg_url

pytestmark = pytest.mark.postgres

__all__ = ["pg_admin", "pg_url"]  # the fixtures, shared with the store suite

# More than the thread pool the API's sync handlers share (anyio's 40).
PROBES = 48
# Generous: a probe is answered in about 2 s; without the bound it is never answered.
PATIENCE = 20.0


class FrozenProxy:
    """A TCP proxy to PostgreSQL that, once frozen, keeps taking connections and bytes and
    forwards none: a database that accepts connections but does not answer."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._frozen.set()

    def close(self) -> None:
        """Every connection dropped: what waited on one fails at once."""
        with self._lock:
            self._closed.set()
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self._sockets.append(client)
                if self._closed.is_set():
                    client.close()
                    return
                try:
                    upstream = socket.create_connection(self._target)
                except OSError:
                    client.close()
                    continue
                self._sockets.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self._frozen.is_set():
                    self._closed.wait()  # held, never forwarded
                sink.sendall(data)
        except OSError:
            pass


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=PATIENCE) as answer:  # noqa: S310 - http
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def until_down(server: str) -> int:
    """Probe until one says the store is down (each probe bounded by PATIENCE: one that is not
    answered fails the test); how many said it was up (its last answer, which stands 1 s)."""
    deadline = time.monotonic() + PATIENCE
    up = 0
    while time.monotonic() < deadline:
        status, body = get(f"{server}/readyz")
        assert status in (200, 503)
        assert json.loads(body)["checks"]["store"] is (status == 200)
        if status == 503:
            return up
        up += 1
        time.sleep(0.02)
    raise AssertionError(f"/readyz said ready for {PATIENCE}s of a database that never answers")


@pytest.mark.slow
def test_readyz_is_bounded_and_leaves_metrics_its_threads(pg_url: str, tmp_path: Path) -> None:
    url = make_url(pg_url)
    proxy = FrozenProxy(url.host or "127.0.0.1", url.port or 5432)
    db = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    (tmp_path / "tasks").mkdir()
    crontask = Crontask(tmp_path, tmp_path / "tasks", ["--allow-empty", "--db", db])
    try:
        crontask.start()
        assert get(f"{crontask.server}/readyz")[0] == 200
        proxy.freeze()
        with ThreadPoolExecutor(PROBES) as pool:
            probes = [pool.submit(until_down, crontask.server) for _ in range(PROBES)]
            while not all(probe.done() for probe in probes):
                status, body = get(f"{crontask.server}/metrics")  # while the probes pile up
                assert status == 200
                assert b"crontask_" in body
            for probe in probes:
                probe.result()
        status, body = get(f"{crontask.server}/readyz")  # the ping still hangs: said at once
        assert status == 503
        assert json.loads(body)["checks"] == {"sources": True, "scheduler": True, "store": False}
    finally:
        proxy.close()
        crontask.stop()
