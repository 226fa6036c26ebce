"""Where ``$CRONTASK_TOKEN`` goes, and whose credentials are sent.

- A loopback server (``127.0.0.1``, ``::1``, ``localhost``) is asked directly, whatever the
  proxy variables say: ``HTTP_PROXY`` sent the token of ``crontask tasks`` to the proxy. A
  remote server is still asked through the proxy they name (``NO_PROXY`` excepted).
- A user name and password in the server URL and ``$CRONTASK_TOKEN`` together are warned of:
  httpx sends the URL's Basic credentials and drops the bearer token (silently, before).
- A token sent over plain ``http://`` to a host that is not this machine is warned of.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.cli.hostile import Handler, HostileServer, crontask

TOKEN = "Tok3nForTheServer"  # noqa: S105 - a test value
PASSWORD = "PassW0rdInTheUrl"  # noqa: S105 - a test value
REMOTE = "http://crontask.invalid:8080"  # never resolved: the proxy answers for it


class ProxyHandler(BaseHTTPRequestHandler):
    server: Proxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.path, self.headers.get("Authorization")))
        body = b'{"items": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.seen: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def proxy_server() -> Iterator[Proxy]:
    proxy = Proxy()
    thread = threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with proxy_server() as served:
        yield served


def authorization(seen: list[str]) -> Any:
    def answer(h: Handler) -> None:
        seen.append(h.headers.get("Authorization") or "")
        h.send(200, {"items": []})

    return answer


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_server_is_asked_directly(
    hostile: HostileServer, proxy: Proxy, variable: str, host: str
) -> None:
    seen: list[str] = []
    hostile.answer = authorization(seen)
    server = hostile.url.replace("127.0.0.1", host)
    done = crontask(
        "tasks", "--server", server, env={variable: proxy.url, "CRONTASK_TOKEN": TOKEN}, timeout=60
    )
    assert done.code == 0, done.err
    assert proxy.seen == []
    assert seen == [f"Bearer {TOKEN}"]
    assert done.err == ""  # no warning: the token does not leave the machine


def test_a_remote_server_is_asked_through_the_proxy(proxy: Proxy) -> None:
    done = crontask(
        "tasks", "--server", REMOTE, env={"HTTP_PROXY": proxy.url, "NO_PROXY": ""}, timeout=60
    )
    assert done.code == 0, done.err
    assert done.out == "no tasks\n"
    assert [path for path, _ in proxy.seen] == [f"{REMOTE}/api/v1/tasks"]


def test_no_proxy_is_respected(proxy: Proxy) -> None:
    done = crontask(
        "tasks",
        "--server",
        REMOTE,
        env={"HTTP_PROXY": proxy.url, "NO_PROXY": "crontask.invalid"},
        timeout=60,
    )
    assert done.code == 1
    assert proxy.seen == []


def test_a_token_over_plain_http_is_warned_of(proxy: Proxy) -> None:
    env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "", "CRONTASK_TOKEN": TOKEN}
    done = crontask("tasks", "--server", REMOTE, env=env, timeout=60)
    assert done.code == 0, done.err
    assert done.err == (
        "crontask: warning: $CRONTASK_TOKEN goes to crontask.invalid over plain http://, "
        "which anyone on the way can read; give --server an https:// URL\n"
    )
    assert proxy.seen == [(f"{REMOTE}/api/v1/tasks", f"Bearer {TOKEN}")]
    # Without a token there is nothing to warn of.
    done = crontask("tasks", "--server", REMOTE, env={**env, "CRONTASK_TOKEN": ""}, timeout=60)
    assert (done.code, done.err) == (0, "")


@pytest.mark.parametrize("userinfo", [f"ops:{PASSWORD}@", "ops@"])
def test_userinfo_and_a_token_are_warned_of_and_the_url_s_are_sent(
    hostile: HostileServer, userinfo: str
) -> None:
    seen: list[str] = []
    hostile.answer = authorization(seen)
    server = hostile.url.replace("http://", f"http://{userinfo}")
    done = crontask("tasks", "--server", server, env={"CRONTASK_TOKEN": TOKEN}, timeout=60)
    assert done.code == 0, done.err
    assert done.err == (
        "crontask: warning: the server URL holds a user name (and password) and "
        "$CRONTASK_TOKEN is set: the URL's are sent, not the token; give one of them\n"
    )
    assert PASSWORD not in done.err
    [sent] = seen
    assert sent.startswith("Basic ")  # as before the warning


def test_userinfo_alone_is_sent(hostile: HostileServer) -> None:
    seen: list[str] = []
    hostile.answer = authorization(seen)
    server = hostile.url.replace("http://", f"http://ops:{PASSWORD}@")
    done = crontask("tasks", "--server", server, timeout=60)
    assert done.code == 0, done.err
    assert seen == ["Basic b3BzOlBhc3NXMHJkSW5UaGVVcmw="]  # ops:PassW0rdInTheUrl
