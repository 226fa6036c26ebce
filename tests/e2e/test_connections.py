"""The API server of a real `crontask run`: its connections are bounded (cli/connections.py)."""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Callable

import httpx

from reconciler.cli import connections
from tests.cli.test_connections import closed_by_server
from tests.e2e.conftest import Crontask
from tests.e2e.test_open_files import open_files_of


def test_crontask_run_serves_with_these_bounds(crontask: Callable[..., Crontask]) -> None:
    """Connections past a quarter of the limit on open files are closed at once (a quarter of
    512 here), and it answers again when they are let go."""
    app = crontask(wrapper=["sh", "-c", 'ulimit -n 512 && exec "$@"', "sh"])
    assert app.proc is not None
    limit = connections.connection_limit(open_files_of(app.proc.pid)[0])
    assert limit == 128
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(app)) for _ in range(limit)]
        extra = stack.enter_context(connect(app))
        assert closed_by_server(extra)
        for sock in held:
            sock.close()
    assert httpx.get(f"{app.server}/healthz", timeout=10).status_code == 200


def connect(app: Crontask) -> socket.socket:
    return socket.create_connection(("127.0.0.1", app.port), timeout=5)


def test_the_limit_follows_the_open_files_limit() -> None:
    assert connections.connection_limit(65_536) == 4096
    assert connections.connection_limit(1024) == 256
    assert connections.connection_limit(64) == 32
    assert connections.connection_limit(resource.RLIM_INFINITY) == 4096
