"""git has deadlines of its own, for when crontask dies without killing it (``SIGKILL``, the
OOM killer): its process group is its own session, out of reach of whatever killed crontask.

Over http(s), a crontask process (a real one, running the real ``git``) is killed hard while
git waits on a remote that accepted the connection and says nothing: git gives up by itself a
little after crontask's timeout and closes the connection, where it used to wait for ever.
(Over ssh, keepalives end a connection to a server gone silent: ``test_git``'s environment
test.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.sources.test_fault_git import live_processes_mentioning
from tests.sources.test_git import isolated_git

__all__ = ["isolated_git"]  # the fixture shared with test_git

TIMEOUT = 2  # crontask's; git's own is 2 s later

CRONTASK = """
import sys
from reconciler.sources.gitprocess import GitRunner
from reconciler.sources.gitrepo import git_env
url, timeout = sys.argv[1], float(sys.argv[2])
runner = GitRunner(env=git_env(url), timeout=timeout, redact=str)
runner.run_bytes(["ls-remote", url], max_stdout=1 << 20)
"""


class SilentRemote:
    """Accepts connections, reads what they send, never answers; ``closed`` is set once the
    client has closed one."""

    def __init__(self) -> None:
        self.accepted = threading.Event()
        self.closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/silent.git"
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._connections.append(connection)
            self.accepted.set()
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        try:
            while connection.recv(65536):
                pass
        except OSError:
            return
        self.closed.set()

    def close(self) -> None:
        self._listener.close()
        for connection in self._connections:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentRemote]:
    remote = SilentRemote()
    yield remote
    remote.close()
    for pid in live_processes_mentioning(remote.url):  # git, if it outlived the test
        with contextlib.suppress(ProcessLookupError):  # it may end between the look and this
            os.kill(pid, signal.SIGKILL)


def test_git_left_behind_by_a_crontask_killed_hard_gives_up_by_itself(
    silent: SilentRemote,
) -> None:
    crontask = subprocess.Popen([sys.executable, "-c", CRONTASK, silent.url, str(TIMEOUT)])
    try:
        assert silent.accepted.wait(30), "git never connected"
    finally:
        crontask.kill()  # before its own timeout: nobody is left to kill git
        crontask.wait()
    assert live_processes_mentioning(silent.url)  # git outlived crontask...
    assert silent.closed.wait(30), "git still waits on the silent remote"  # ...not for ever
