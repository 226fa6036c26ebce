"""A trigger whose answer does not come (not within ``$CRONTASK_TIMEOUT``, or a connection
that breaks once the request is sent) may have been taken: the line says to look at the runs
before triggering again, as one whose 2xx cannot be read does, since asking again could run the
task twice. It said only "did not answer within 1s". A real process, a real HTTP server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from reconciler.cli import client
from reconciler.cli.answers import RemoteError, Unanswered
from reconciler.cli.remote import NOT_TRIGGERED
from tests.cli.hostile import (
    Handler,
    HostileServer,
    assert_one_line_error,
    crontask,
    hostile_server,
)
from tests.cli.test_remote_proxy_env import refusing_port


def _never(h: Handler) -> None:
    h.server.stopped.wait(60)  # the test's end: no answer before the command's deadline


def _hang_up(h: Handler) -> None:
    h.close_connection = True  # the request was read: it may have been acted on


@pytest.mark.parametrize(
    ("answer", "says"),
    [(_never, "did not answer within 1s"), (_hang_up, "failed: RemoteProtocolError")],
)
def test_a_trigger_without_an_answer_may_have_run(
    hostile: HostileServer, answer: object, says: str
) -> None:
    hostile.answer = answer  # type: ignore[assignment]
    done = crontask(
        "trigger", "ops/a", "--server", hostile.url, env={"CRONTASK_TIMEOUT": "1"}, timeout=60
    )
    look = f"see `crontask runs ops/a --server {hostile.url}` before triggering it again"
    assert_one_line_error(done.code, done.err, f"{says}; it may have run: {look}\n")
    assert hostile.requests == ["/api/v1/tasks/ops/a/runs"]  # asked once, never again


class _NoTrace(httpx.AsyncHTTPTransport):
    """A transport that never calls httpcore's ``trace`` extension (a custom one, an httpcore
    that drops it): how far a request went is not told."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions.pop("trace", None)
        return await super().handle_async_request(request)


@pytest.mark.parametrize(
    ("answer", "says"),
    [(_never, "did not answer within 1s"), (_hang_up, "failed: RemoteProtocolError")],
)
def test_a_request_whose_progress_is_not_told_may_have_run(
    hostile: HostileServer, answer: object, says: str
) -> None:
    """Without trace events it was said Unsent ("nothing was run") though the server had read
    it: a trigger asked again could run the task twice."""
    hostile.answer = answer  # type: ignore[assignment]
    api = client._Api(hostile.url, None, 1.0, 1 << 20)

    async def trigger() -> None:
        async with client.connect(timeout=1.0, transport=_NoTrace(), server=api.server) as c:
            await api.call(c, "POST", "/api/v1/tasks/ops/a/runs")

    with pytest.raises(Unanswered, match=says):
        asyncio.run(trigger())
    assert hostile.requests == ["/api/v1/tasks/ops/a/runs"]  # the server had it


def test_a_list_without_an_answer_says_nothing_of_runs(hostile: HostileServer) -> None:
    hostile.answer = _never
    done = crontask("tasks", "--server", hostile.url, env={"CRONTASK_TIMEOUT": "1"}, timeout=60)
    assert_one_line_error(done.code, done.err, "did not answer within 1s\n")


# -- a request that never reached crontask -----------------------------------------------------
# A timeout (or a broken connection) before the request went out - a proxy that never opened
# the tunnel (CONNECT), a server whose accept queue is full - is no "may have run": nothing
# reached crontask, and a trigger says it was not triggered, exit status 75 (try again later),
# as for a server that refuses the connection (one restarting: the API stops listening first).
# It said "did not answer within 1s; it may have run", naming no proxy; then exit status 1.
# The proxy is named as host:port and its variable, never its credentials.

SECRET = "s3cretOfTheProxy"  # noqa: S105 - a test value: it must never be printed
TUNNELLED = "https://crontask.invalid:8443"  # never resolved: only a CONNECT asks for it
FORWARDED = "http://crontask.invalid:8080"


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    """A proxy that misbehaves as ``proxy.answer`` says, to a CONNECT or a forwarded request
    (``proxy.requests``: their targets); the command reads no other proxy variable."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("CRONTASK_TIMEOUT", raising=False)
    with hostile_server() as server:
        server.RequestHandlerClass = _Proxying
        yield server


class _Proxying(Handler):
    do_CONNECT = Handler.do_GET


def _proxy_env(proxy: HostileServer, variable: str) -> dict[str, str]:
    where = f"127.0.0.1:{proxy.server_address[1]}"
    return {variable: f"http://ops:{SECRET}@{where}", "CRONTASK_TIMEOUT": "1"}


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (_never, "the proxy {where} ($HTTPS_PROXY) did not answer within 1s; nothing was sent"),
        (_hang_up, "through the proxy {where} ($HTTPS_PROXY) failed before it was sent: Remote"),
    ],
)
def test_a_trigger_a_proxy_never_tunnelled_was_not_run(
    proxy: HostileServer, answer: object, says: str
) -> None:
    proxy.answer = answer  # type: ignore[assignment]
    where = f"127.0.0.1:{proxy.server_address[1]}"
    done = crontask(
        "trigger", "ops/a", "--server", TUNNELLED, env=_proxy_env(proxy, "HTTPS_PROXY"), timeout=60
    )
    said = "crontask: ops/a not triggered (nothing was run): "
    assert_one_line_error(done.code, done.err, said, NOT_TRIGGERED)
    assert says.format(where=where) in done.err, done.err
    assert "may have run" not in done.err
    assert SECRET not in done.err
    assert proxy.requests == ["crontask.invalid:8443"]  # a CONNECT, once: nothing went further


def test_a_list_through_a_proxy_that_hangs_names_it(proxy: HostileServer) -> None:
    proxy.answer = _never
    env = _proxy_env(proxy, "HTTPS_PROXY")
    done = crontask("tasks", "--server", TUNNELLED, env=env, timeout=60)
    where = f"127.0.0.1:{proxy.server_address[1]}"
    says = (
        f"crontask: the proxy {where} ($HTTPS_PROXY) did not answer within 1s; nothing was "
        f"sent to crontask at {TUNNELLED}\n"
    )
    assert_one_line_error(done.code, done.err, says)
    assert done.err == says


def test_a_trigger_a_proxy_took_may_have_run(proxy: HostileServer) -> None:
    """A proxy that forwards (http://) was sent the request itself: it may have passed it on."""
    proxy.answer = _never
    env = _proxy_env(proxy, "HTTP_PROXY")
    done = crontask("trigger", "ops/a", "--server", FORWARDED, env=env, timeout=60)
    where = f"127.0.0.1:{proxy.server_address[1]}"
    said = f"crontask at {FORWARDED} did not answer within 1s through the proxy {where} ($HTTP_"
    assert_one_line_error(done.code, done.err, said)
    assert "PROXY); it may have run: see `crontask runs ops/a" in done.err, done.err
    assert SECRET not in done.err
    assert proxy.requests == [f"{FORWARDED}/api/v1/tasks/ops/a/runs"]


@contextmanager
def _full_queue() -> Iterator[str]:
    """A server on 127.0.0.1 whose queue of connections to accept is full (listen(0) and one
    connection it never accepts): Linux drops a new connection's SYN, which then times out."""
    with socket.socket() as server, socket.socket() as first:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        first.connect(server.getsockname())
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_trigger_whose_connection_timed_out_was_not_run() -> None:
    with _full_queue() as url:
        done = crontask(
            "trigger", "ops/a", "--server", url, env={"CRONTASK_TIMEOUT": "1"}, timeout=60
        )
    says = (
        f"crontask: ops/a not triggered (nothing was run): crontask at {url} did not answer "
        "within 1s; nothing was sent to it\n"
    )
    assert_one_line_error(done.code, done.err, says, NOT_TRIGGERED)
    assert done.err == says


def test_a_trigger_refused_was_not_run() -> None:
    """Refused (nothing listens: a crontask restarting, or not started): nothing was sent, so
    the trigger surely was not taken. It was exit status 1, "the run may have started"."""
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}"
        done = crontask("trigger", "ops/a", "--server", url, timeout=60)
    says = (
        f"crontask: ops/a not triggered (nothing was run): cannot reach crontask at {url} "
        "(is `crontask run` running?)\n"
    )
    assert_one_line_error(done.code, done.err, says, NOT_TRIGGERED)
    assert done.err == says


def test_a_refusal_whose_progress_is_not_told_is_not_said_unsent() -> None:
    """A transport that tells nothing of how far a request went: a ConnectError it raises is
    not taken as proof that nothing went out (a trigger exits 1, as before)."""
    with refusing_port() as port:
        api = client._Api(f"http://127.0.0.1:{port}", None, 5.0, 1 << 20)

        async def trigger() -> None:
            async with client.connect(timeout=5.0, transport=_NoTrace(), server=api.server) as c:
                await api.call(c, "POST", "/api/v1/tasks/ops/a/runs")

        with pytest.raises(RemoteError, match="cannot reach crontask at") as raised:
            asyncio.run(trigger())
    assert type(raised.value) is RemoteError
