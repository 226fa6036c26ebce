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
    """Past a quarter of the limit on open files (a quarter of 512 here), or an eighth of that
    from one address, the connection waiting longest for a request head is dropped for the new
    one: a request is answered while others hold all of them."""
    app = crontask(wrapper=["sh", "-c", 'ulimit -n 512 && exec "$@"', "sh"])
    assert app.proc is not None
    limit = connections.connection_limit(open_files_of(app.proc.pid)[0])
    assert limit == 128
    share = connections.peer_limit(limit)
    assert share == 16
    with contextlib.ExitStack() as stack:
        first = [stack.enter_context(connect(app, "127.0.0.2")) for _ in range(share)]
        stack.enter_context(connect(app, "127.0.0.2"))
        assert closed_by_server(first[0])  # sooner than the head's 10 s: room was made
        for n in range(3, 3 + limit // share):  # one address more than the limit takes
            for _ in range(share):
                stack.enter_context(connect(app, f"127.0.0.{n}"))
        response = httpx.get(f"{app.server}/healthz", timeout=10)
        assert response.status_code == 200
    assert httpx.get(f"{app.server}/healthz", timeout=10).status_code == 200


def connect(app: Crontask, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", app.port), timeout=5, source_address=(source, 0))


def test_the_limit_follows_the_open_files_limit() -> None:
    assert connections.connection_limit(65_536) == 4096
    assert connections.connection_limit(1024) == 256
    assert connections.connection_limit(64) == 32
    assert connections.connection_limit(resource.RLIM_INFINITY) == 4096
