"""``crontask run`` stops, in bounded time, on SIGTERM while its PostgreSQL store takes
connections and bytes but never answers (a hung server, a proxy whose backend died). The
store's threads and the heartbeat's wait in the driver without a bound of their own: the stop
must neither join them on the event loop nor at the interpreter's exit, but name them in one
line and end with its exit status."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import wait_for

PG_URL = os.environ.get("CRONTASK_TEST_POSTGRES_URL", "")
pytestmark = pytest.mark.skipif(not PG_URL, reason="needs CRONTASK_TEST_POSTGRES_URL")
PATIENCE = 60.0  # far above the stop's own bounds (grace 1 s, kill grace 1 s, threads 2 s)

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: tick}
spec:
  schedule: "* * * * * *"
  command: {args: ["true"]}
"""


class BlackHoleProxy:
    """Forwards TCP to PostgreSQL until ``swallow``; from then on it accepts connections and
    reads every byte, and answers nothing. ``swallowed`` is set once it has dropped a byte
    from crontask (crontask is then waiting for an answer that never comes)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.hole = threading.Event()
        self.swallowed = threading.Event()
        self.closed = threading.Event()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.server, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def swallow(self) -> None:
        self.hole.set()

    def close(self) -> None:
        self.closed.set()
        self.thread.join(5)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()

    def _loop(self) -> None:
        while not self.closed.is_set():
            for key, _ in self.selector.select(0.1):
                if key.data is None:
                    self._accept()
                else:
                    self._pass(key.fileobj, *key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        client, _ = self.server.accept()
        upstream = None if self.hole.is_set() else socket.create_connection(self.target)
        self.selector.register(client, selectors.EVENT_READ, (upstream, True))
        if upstream is not None:
            self.selector.register(upstream, selectors.EVENT_READ, (client, False))

    def _pass(self, sock: socket.socket, other: socket.socket | None, from_client: bool) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(sock)
            sock.close()
            return
        if self.hole.is_set() or other is None:
            if from_client:
                self.swallowed.set()
            return
        with contextlib.suppress(OSError):
            other.sendall(data)


@pytest.mark.slow
def test_sigterm_while_the_store_swallows_everything_ends_the_process(tmp_path: Path) -> None:
    url = urlsplit(PG_URL)
    proxy = BlackHoleProxy((url.hostname or "127.0.0.1", url.port or 5432))
    db = url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{proxy.port}").geturl()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "tick.yaml").write_text(TASK)
    log = tmp_path / "log"
    argv = [sys.executable, "-m", "reconciler", "run", "tasks", "--listen", "off"]
    argv += ["--db", db, "--state-dir", "state", "--shutdown-grace", "1s", "--kill-grace", "1s"]
    with log.open("w") as out:
        env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("a run finished", lambda: "run finished" in log.read_text(), PATIENCE)
        proxy.swallow()
        assert proxy.swallowed.wait(PATIENCE), "crontask never wrote to the store again"
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # its threads' stacks in the log (faulthandler)
            proc.wait(PATIENCE)
            pytest.fail(f"crontask still running {PATIENCE}s after SIGTERM:\n{log.read_text()}")
    finally:
        proc.kill()
        proc.wait()
        proxy.close()
    text = log.read_text()
    assert "crontask stopped" in text, text
    assert "threads still waiting at exit" in text, text
    assert "Traceback" not in text, text
    lost = "run records lost at shutdown" in text or "not confirmed at shutdown" in text
    assert status == (1 if lost else 0), text
