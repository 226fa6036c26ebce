"""The client commands read the proxy variables as ``crontask run``'s requests do
(:mod:`reconciler.httpclient`). A setting httpx cannot use (``ALL_PROXY=socks4://...``,
``NO_PROXY=localhost,[::1]``, a proxy URL that is not one) ended every remote command in a
traceback, naming no variable; now it is left out with one warning on stderr that names the
variable, never its value (a proxy URL may hold a password), and the command goes on. A proxy
that cannot be reached or refuses is named (``host:port`` and its variable, no credentials):
the line said that crontask could not be reached, or a bare ``ProxyError``. Real processes, a
real forward proxy on 127.0.0.1 answering for a server that is never resolved."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.cli.remote import NOT_TRIGGERED
from tests.cli.hostile import assert_one_line_error, crontask
from tests.cli.test_server_credentials import REMOTE, Proxy, proxy_server

SECRET = "Hunter2InTheProxy"  # noqa: S105 - a test value: it must never be printed
VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
TUNNELLED = "https://crontask.invalid:8443"  # never resolved: only a CONNECT asks for it


@pytest.fixture(autouse=True)
def environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable but what the test gives the command (the lower-case ones win)."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with proxy_server() as served:
        yield served


UNUSABLE = [
    ("ALL_PROXY", f"socks://user:{SECRET}@127.0.0.1:1080/"),
    ("ALL_PROXY", f"socks4://user:{SECRET}@127.0.0.1:1080"),
    ("all_proxy", f"socks4a://user:{SECRET}@127.0.0.1:1080"),
    ("HTTPS_PROXY", f"http://user:{SECRET}@[::1"),
    ("NO_PROXY", f"[::1,{SECRET}"),  # a bracket never closed
]


@pytest.mark.parametrize(("variable", "value"), UNUSABLE)
def test_an_unusable_setting_is_named_and_the_others_apply(
    proxy: Proxy, variable: str, value: str
) -> None:
    env = {"HTTP_PROXY": proxy.url, variable: value}
    done = crontask("tasks", "--server", REMOTE, env=env, timeout=60)
    assert "Traceback" not in done.err, done.err
    assert (done.code, done.out) == (0, "no tasks\n"), done.err
    assert [path for path, _ in proxy.seen] == [f"{REMOTE}/api/v1/tasks"]
    [warning] = done.err.splitlines()
    assert warning.startswith(f"crontask: warning: ${variable} is not used: "), warning
    assert SECRET not in done.err


@pytest.mark.parametrize("command", [("runs",), ("trigger", "ops/a"), ("members",)])
def test_every_remote_command_goes_on(proxy: Proxy, command: tuple[str, ...]) -> None:
    env = {"HTTP_PROXY": proxy.url, "ALL_PROXY": f"socks4://user:{SECRET}@127.0.0.1:1080"}
    done = crontask(*command, "--server", REMOTE, env=env, timeout=60)
    assert "Traceback" not in done.err, done.err
    assert len(proxy.seen) == 1  # asked, through the proxy that can be used
    assert done.err.startswith("crontask: warning: $ALL_PROXY is not used: a socks4 proxy")
    assert SECRET not in done.err


def test_no_proxy_may_name_an_ipv6_address_in_brackets(proxy: Proxy) -> None:
    env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "localhost,[::1]"}
    done = crontask("tasks", "--server", REMOTE, env=env, timeout=60)
    assert (done.code, done.out, done.err) == (0, "no tasks\n", "")
    assert len(proxy.seen) == 1


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 bound but not listening: a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_proxy_that_cannot_be_reached_is_named() -> None:
    with refusing_port() as port:
        env = {"HTTP_PROXY": f"http://user:{SECRET}@127.0.0.1:{port}"}
        done = crontask("tasks", "--server", REMOTE, env=env, timeout=60)
    says = f"cannot reach the proxy 127.0.0.1:{port} ($HTTP_PROXY) to ask crontask at {REMOTE}\n"
    assert_one_line_error(done.code, done.err, says)
    assert SECRET not in done.err


class _Refuses(BaseHTTPRequestHandler):
    """A proxy that wants credentials, for a tunnel (https) and a request it would forward."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(407, "Proxy Authentication Required")
        self.send_header("Proxy-Authenticate", 'Basic realm="corp"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_CONNECT = do_POST = do_GET


@contextmanager
def refusing_proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("server", "variable"),
    [(TUNNELLED, "HTTPS_PROXY"), (REMOTE, "HTTP_PROXY")],
)
def test_a_proxy_that_refuses_is_named(server: str, variable: str) -> None:
    with refusing_proxy() as where:
        env = {variable: f"http://user:{SECRET}@{where}"}
        done = crontask("tasks", "--server", server, env=env, timeout=60)
    says = f"the proxy {where} (${variable}) refused the request to {server}: 407 Proxy"
    assert_one_line_error(done.code, done.err, says)
    assert SECRET not in done.err


# A trigger through a proxy: one that cannot be reached, or refuses the tunnel to an https://
# server (CONNECT), was sent nothing crontask could get: not taken, exit status 75 (it was 1,
# "the run may have started"). A forward proxy (http://) was sent the request itself, and its
# error answer (a 407, or a 502 after the server took it) does not say crontask never saw it:
# exit status 1, look at the runs.
def test_a_trigger_through_a_proxy_that_cannot_be_reached_was_not_run() -> None:
    with refusing_port() as port:
        env = {"HTTPS_PROXY": f"http://user:{SECRET}@127.0.0.1:{port}"}
        done = crontask("trigger", "ops/a", "--server", TUNNELLED, env=env, timeout=60)
    says = f"ops/a not triggered (nothing was run): cannot reach the proxy 127.0.0.1:{port} "
    assert_one_line_error(done.code, done.err, says, NOT_TRIGGERED)
    assert SECRET not in done.err


@pytest.mark.parametrize(
    ("server", "variable", "status"),
    [(TUNNELLED, "HTTPS_PROXY", NOT_TRIGGERED), (REMOTE, "HTTP_PROXY", 1)],
)
def test_a_trigger_a_proxy_refuses_is_not_run_only_if_it_was_not_sent(
    server: str, variable: str, status: int
) -> None:
    with refusing_proxy() as where:
        env = {variable: f"http://user:{SECRET}@{where}"}
        done = crontask("trigger", "ops/a", "--server", server, env=env, timeout=60)
    says = f"the proxy {where} (${variable}) refused the request to {server}: 407 Proxy"
    assert_one_line_error(done.code, done.err, says, status)
    assert ("not triggered (nothing was run)" in done.err) == (status == NOT_TRIGGERED)
    assert SECRET not in done.err
