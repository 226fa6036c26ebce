"""``crontask tasks --server`` to an address in a ``NO_PROXY`` range (``10.0.0.0/8``) is asked
directly, with its token: it went through ``$HTTP_PROXY``, as httpx made the entry the one host
``10.0.0.0``. A loopback server is asked directly whatever ``NO_PROXY`` says, so the server
listens on this machine's address of another interface (skipped where there is none): a
real process, a real server and a real forward proxy on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer

import pytest

from tests.cli.hostile import crontask
from tests.cli.test_server_credentials import TOKEN, Proxy, ProxyHandler, proxy_server

VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def local_address() -> str | None:
    """This machine's IPv4 address towards other machines (no packet is sent: a UDP socket's
    connect only picks the route), if it has one that is not loopback and can be listened on."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("198.51.100.1", 9))
            address = str(sock.getsockname()[0])
        with socket.socket() as sock:
            sock.bind((address, 0))
    except OSError:
        return None
    return None if ipaddress.ip_address(address).is_loopback else address


ADDRESS = local_address()
pytestmark = pytest.mark.skipif(ADDRESS is None, reason="no address here but loopback")


class Remote(Proxy):
    """A crontask (as :class:`Proxy` answers: no tasks) on ``host``, recording what it is asked."""

    def __init__(self, host: str) -> None:
        ThreadingHTTPServer.__init__(self, (host, 0), ProxyHandler)
        self.seen = []
        self.lock = threading.Lock()


@contextmanager
def remote(host: str) -> Iterator[Remote]:
    server = Remote(host)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize(
    ("no_proxy", "direct"),
    [("{net}", True), ("example.invalid, {net} ", True), ("203.0.113.0/24", False)],
)
def test_a_server_in_a_no_proxy_range_is_asked_directly(no_proxy: str, direct: bool) -> None:
    assert ADDRESS is not None
    network = ipaddress.ip_network(f"{ADDRESS}/24", strict=False)
    with proxy_server() as proxy, remote(ADDRESS) as server:
        env = {
            "HTTP_PROXY": proxy.url,
            "NO_PROXY": no_proxy.format(net=network),
            "CRONTASK_TOKEN": TOKEN,
        }
        url = f"http://{ADDRESS}:{server.server_address[1]}"
        done = crontask("tasks", "--server", url, env=env, timeout=60)
    assert (done.code, done.out) == (0, "no tasks\n"), done.err
    if direct:
        assert (server.seen, proxy.seen) == ([("/api/v1/tasks", f"Bearer {TOKEN}")], [])
    else:  # the control: this address is not asked directly for being this machine's
        assert (server.seen, proxy.seen) == ([], [(f"{url}/api/v1/tasks", f"Bearer {TOKEN}")])
