"""A ``Host`` header that is no host and port is refused as any other name is (``421``).

The check read the name before the last ``:`` and never looked at the port part:
``Host: 127.0.0.1:30001@evil`` and ``Host: 127.0.0.1:abc`` were answered as 127.0.0.1, and
``[::1]evil`` as ::1. No browser sends such a header, and a URL built from it names another
host. The real ``crontask run`` without auth (anonymous admin: the case it matters most for),
through ``http.client``, which sends the header as given; with auth, the check's own module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from reconciler.api.hosts import LoopbackHosts, host_name
from tests.api.conftest import TestClient
from tests.api.test_hosts import send, start
from tests.e2e.conftest import Crontask

pytestmark = pytest.mark.e2e

ALLOWED = "crontask.example"
# {port}: the server's. Each names a host its name part alone would be answered for.
MALFORMED = [
    "127.0.0.1:{port}@attacker.example",
    "127.0.0.1:abc",
    "127.0.0.1:123456",
    "127.0.0.1:{port}/x",
    "localhost:{port}#x",
    "localhost:{port} x",
    "[::1]:abc",
    "[::1]@attacker.example",
    "[::1]attacker.example",
    "[::1]{port}",
    "[localhost]:{port}",  # brackets hold an IPv6 address
    "192.0.2.1:x",  # an address is answered without auth, with a port
    f"{ALLOWED}:x",
    f"{ALLOWED}:{{port}}@attacker.example",
]
WELL_FORMED = [
    "127.0.0.1:{port}",
    "127.0.0.1:",  # an empty port, as RFC 3986 allows
    "[::1]:",
    "127.0.0.1",
    "localhost:{port}",
    "[::1]:{port}",
    "[::1]",
    "192.0.2.1:{port}",
    f"{ALLOWED}:{{port}}",
    ALLOWED,
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    """One crontask for the module: what is answered depends on the Host alone."""
    server = start(tmp_path_factory.mktemp("malformed"), "--allow-host", ALLOWED)
    yield server
    server.stop()


@pytest.mark.parametrize("host", MALFORMED)
def test_a_host_that_is_no_host_and_port_is_misdirected(app: Crontask, host: str) -> None:
    assert send(app, "GET", "/api/v1/tasks", host.format(port=app.port)) == 421


@pytest.mark.parametrize("host", WELL_FORMED)
def test_a_host_and_port_is_answered(app: Crontask, host: str) -> None:
    assert send(app, "GET", "/api/v1/tasks", host.format(port=app.port)) == 200


@pytest.mark.parametrize("host", MALFORMED)
def test_with_auth_a_host_that_is_no_host_and_port_is_misdirected(host: str) -> None:
    header = host.format(port=8080)

    async def ok(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    checked = LoopbackHosts(Starlette(routes=[Route("/", ok)]), also=[ALLOWED], authenticated=True)
    with TestClient(checked) as client:
        assert client.get("/", headers={"host": header}).status_code == 421
        assert client.get("/", headers={"host": "localhost:8080"}).status_code == 200
        assert client.get("/", headers={"host": f"{ALLOWED}:8080"}).status_code == 200
    assert host_name(header) == header.lower()  # whole: it matches no name
