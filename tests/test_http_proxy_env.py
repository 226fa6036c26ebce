"""Proxies named in crontask's environment, for an http task's request and a notification's:
as httpx reads them, except a setting httpx cannot use. ``NO_PROXY=localhost,[::1]`` or
``ALL_PROXY=socks4://...`` stopped ``crontask run --notifications`` at start ("Invalid port:
':1]'", naming no variable) and failed every http task (or raised out of it); now one warning
names the variable (never its value: a proxy URL may hold a password) and requests go on
without that setting. Real servers on 127.0.0.1 and ::1, a real forward proxy."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from pathlib import Path

import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.httpclient import proxy_routes
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import Delivery, Message
from tests.http_servers import serving, text
from tests.notify.test_notifier import config, counts

NOT_USED = "proxy setting not used"
VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable but what the test sets."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def unusable_socks4() -> tuple[str, str]:
    """A proxy URL httpx cannot use (SOCKS4), with a password; unique, so that this process
    has not warned about it yet (it warns once per setting)."""
    password = f"hunter2-{uuid.uuid4().hex}"
    return f"socks4://user:{password}@proxy.invalid:1080", password


async def get(url: str) -> Outcome:
    action = HttpAction.model_validate({"url": url, "timeoutSeconds": 10})
    return await asyncio.wait_for(HttpRun(action, env={}).run(), 30)


def warnings(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.fields for r in caplog.records if r.getMessage() == NOT_USED]  # type: ignore[attr-defined]


def test_an_unusable_proxy_is_named_once_and_the_task_goes_direct(
    environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    proxy, password = unusable_socks4()
    environ.setenv("ALL_PROXY", proxy)

    async def scenario() -> list[Outcome]:
        async with serving(text(b"direct")) as server:
            return [await get(f"{server.url}/"), await get(f"{server.url}/")]

    outcomes = asyncio.run(scenario())
    assert [(o.status, o.output) for o in outcomes] == [(RunStatus.SUCCEEDED, "direct")] * 2
    [said] = warnings(caplog)  # once, not at each run
    assert said["variable"] == "ALL_PROXY"
    assert "socks4" in str(said["problem"])
    assert password not in caplog.text
    assert all(password not in str(r.__dict__) for r in caplog.records)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_no_proxy_may_write_an_ipv6_address_in_brackets(
    environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    async def scenario() -> tuple[list[str], list[str]]:
        async with (
            serving(text(b"via the proxy")) as proxy,
            serving(text(b"direct")) as v4,
            serving(text(b"direct"), host="::1") as v6,
        ):
            environ.setenv("HTTP_PROXY", proxy.url)
            environ.setenv("NO_PROXY", "localhost,[::1]")
            port = v4.url.rsplit(":", 1)[1]
            urls = [f"http://localhost:{port}/", f"{v6.url}/", f"{v4.url}/"]
            outcomes = [await get(url) for url in urls]
            return [o.output for o in outcomes], proxy.requests

    outputs, via_proxy = asyncio.run(scenario())
    assert outputs == ["direct", "direct", "via the proxy"]
    assert len(via_proxy) == 1
    assert warnings(caplog) == []


def test_an_unusable_no_proxy_entry_is_named_and_the_others_apply(
    environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    async def scenario() -> list[str]:
        async with serving(text(b"via the proxy")) as proxy, serving(text(b"direct")) as server:
            environ.setenv("HTTP_PROXY", proxy.url)
            environ.setenv("NO_PROXY", "[::1,localhost")  # the bracket is never closed
            port = server.url.rsplit(":", 1)[1]
            outcome = await get(f"http://localhost:{port}/")
            return [outcome.output]

    assert asyncio.run(scenario()) == ["direct"]
    [said] = warnings(caplog)
    assert said["variable"] == "NO_PROXY"
    assert "[::1" not in str(said)  # an environment value is never logged


def test_notifications_start_and_are_sent_with_an_unusable_proxy(
    tmp_path: Path, environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    proxy, password = unusable_socks4()
    environ.setenv("ALL_PROXY", proxy)
    environ.setenv("NO_PROXY", "localhost,[::1]")
    metrics = Metrics()

    async def scenario() -> list[str]:
        async with serving(text(b"")) as receiver:
            delivery = Delivery(
                config(tmp_path, f"{receiver.url}/hook", kind="generic"), metrics=metrics
            )
            stop = asyncio.Event()
            async with delivery.running(stop):
                delivery.enqueue(Message("hook", "failed", {"event": "failed"}))
                deadline = time.monotonic() + 30
                while counts(metrics)["sent"] == 0:
                    assert time.monotonic() < deadline, counts(metrics)
                    await asyncio.sleep(0.02)
                stop.set()
            return receiver.requests

    assert asyncio.run(scenario()) == ["POST /hook HTTP/1.1"]
    assert [said["variable"] for said in warnings(caplog)] == ["ALL_PROXY"]
    assert password not in caplog.text


@pytest.mark.parametrize("proxy", ["http://", "http://:3128", "socks5://user:pw@:1"])
def test_a_proxy_without_a_host_is_named_and_left_out(
    environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, proxy: str
) -> None:
    """Every request through it failed ("Name or service not known"), naming no variable."""
    caplog.set_level(logging.WARNING)
    environ.setenv("HTTP_PROXY", proxy)
    assert proxy_routes() == ()
    assert any(w.get("variable") == "HTTP_PROXY" for w in warnings(caplog))
