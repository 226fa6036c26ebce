"""Proxies named in crontask's environment, for an http task's request and a notification's:
as httpx reads them, except a setting httpx cannot use. ``NO_PROXY=localhost,[::1]`` or
``ALL_PROXY=socks4://...`` stopped ``crontask run --notifications`` at start ("Invalid port:
':1]'", naming no variable) and failed every http task (or raised out of it); now one warning
names the variable (never its value: a proxy URL may hold a password) and requests go on
without that setting. ``NO_PROXY`` address ranges (``10.0.0.0/8``) sent a request to any other
address of the range through the proxy, with its headers; ``fd00::/8`` was refused. Real
servers on 127.0.0.x and ::1, a real forward proxy (one answering whatever it is asked)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest
from httpx._utils import URLPattern

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.httpclient import async_client
from reconciler.proxies import _no_proxy_pattern, proxy_routes
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
    assert proxy_routes().proxies == ()
    assert any(w.get("variable") == "HTTP_PROXY" for w in warnings(caplog))


def bindable(host: str) -> bool:
    """Whether a server can listen on ``host`` (127.0.0.0/8 is all loopback on Linux, not on
    every system)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(
    not (bindable("127.0.0.2") and bindable("127.0.1.2")), reason="only 127.0.0.1 is loopback"
)
def test_no_proxy_address_ranges_go_direct(
    environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An address in a range goes direct, another through the proxy; a name is not resolved
    for it (``localhost`` is 127.0.0.1, in the range), as curl does."""
    caplog.set_level(logging.WARNING)

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        async with (
            serving(text(b"via the proxy")) as proxy,
            serving(text(b"direct"), host="127.0.0.2") as inside,
            serving(text(b"direct"), host="127.0.1.2") as outside,
        ):
            environ.setenv("HTTP_PROXY", proxy.url)
            environ.setenv("NO_PROXY", "192.0.2.0/24, 127.0.0.0/24")
            port = inside.url.rsplit(":", 1)[1]
            urls = [f"{inside.url}/", f"{outside.url}/", f"http://localhost:{port}/"]
            outcomes = [await get(url) for url in urls]
            return urls, [o.output for o in outcomes], proxy.requests

    urls, outputs, via_proxy = asyncio.run(scenario())
    assert outputs == ["direct", "via the proxy", "via the proxy"]
    assert via_proxy == [f"GET {url} HTTP/1.1" for url in urls[1:]]  # what the proxy was asked
    assert warnings(caplog) == []


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_no_proxy_ipv6_ranges_go_direct(
    environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``::/64`` (::1 is in it) and ``[::]/64``: httpx refused the entry, so the request went
    through the proxy, after a warning."""
    caplog.set_level(logging.WARNING)

    async def scenario(no_proxy: str) -> list[str]:
        async with serving(text(b"via the proxy")) as proxy, serving(text(b"d"), host="::1") as v6:
            environ.setenv("HTTP_PROXY", proxy.url)
            environ.setenv("NO_PROXY", no_proxy)
            outcome = await get(f"{v6.url}/")
            assert outcome.output == "d"
            return proxy.requests

    assert asyncio.run(scenario("::/64")) == []
    assert asyncio.run(scenario("[::]/64")) == []
    assert warnings(caplog) == []


def test_what_no_proxy_sends_direct(
    environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The routing itself: a range's addresses, whatever their bits past the prefix; not the
    other addresses, nor a name (it is not resolved)."""
    caplog.set_level(logging.WARNING)
    environ.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    ranges = "10.0.0.0/8,192.0.2.7/24,fd00::/8,[fe80::]/10,198.51.100.1/33,example.com"
    # A name's one trailing dot is the same name (the resolver's root); a leading dot is the
    # domain and the names in it, as curl has them.
    names = "example.org,.example.net,example.info.,http://example.test."
    environ.setenv("NO_PROXY", f"{ranges},{names}")
    proxies = proxy_routes()
    direct = [
        "http://10.255.0.1/",
        "http://10.0.0.0:8080/",
        "http://192.0.2.200/",
        "https://[fd12::1]/",
        "http://[fe80::1]/",
        "http://example.com/",
        "http://www.example.com/",
        # IPv4 in the short and numeric forms the resolver reads as 10.0.0.1 (inet_aton's)
        "http://10.1/",
        "http://167772161/",
        "http://0xa.0.0.1/",
        "http://012.1/",  # octal: 10.0.0.1
        "http://crontask.example.org./",
        "http://example.org./",
        "http://example.net/",
        "http://a.example.net./",
        "http://example.info/",
        "http://a.example.info./",
        "http://example.test/",
        "http://10.1.2.3./",
    ]
    proxied = [
        "http://11.0.0.1/",
        "http://192.0.3.1/",
        "http://[fc00::1]/",
        "http://10.0.0.1.nip.io/",  # a name is not resolved
        "http://[::ffff:10.0.0.1]/",  # an IPv6 address, as curl has it
        "http://198.51.100.1/",  # its entry is no range: left out
        "http://11.1/",  # 11.0.0.1
        "http://4294967296/",  # no IPv4 address: a name
        "http://0xb.1/",
        "http://example.org.evil./",
        "http://notexample.net/",
        "http://example.info../",  # two dots: not the name
        "https://example.test/",
    ]
    assert [u for u in direct + proxied if proxies.direct(httpx.URL(u))] == direct
    [said] = warnings(caplog)
    assert said == {
        "variable": "NO_PROXY",
        "problem": "entry 5 of 10 is not a host name, address, range or URL; it is left out",
    }


# NO_PROXY entries that are names and addresses, and URLs to match against them.
HOSTS = (
    "example.com,.example.org,localhost,10.0.0.1,::1,[::2]:8080,svc:8443,https://tls.test,http://"
)
URLS = [
    f"{scheme}://{host}{port}/"
    for scheme in ("http", "https")
    for host in (
        "example.com",
        "www.example.com",
        "a.b.example.com",
        "badexample.com",
        "example.com.evil",
        "example.org",
        "www.example.org",
        "localhost",
        "www.localhost",
        "10.0.0.1",
        "10.0.0.10",
        "[::1]",
        "[::2]",
        "svc",
        "svc.cluster",
        "tls.test",
        "www.tls.test",
    )
    for port in ("", ":8080", ":8443")
]


@pytest.mark.parametrize("entries", [HOSTS, HOSTS.removesuffix(",http://")])
def test_no_proxy_names_match_as_httpx_matched_them(
    environ: pytest.MonkeyPatch, entries: str
) -> None:
    """Names and addresses are looked up by host now, not matched pattern after pattern: the
    same URLs go direct as when httpx matched its mount pattern of each entry."""
    environ.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    environ.setenv("NO_PROXY", entries)
    proxies = proxy_routes()
    patterns = [URLPattern(_no_proxy_pattern(entry)) for entry in entries.split(",")]
    urls = [httpx.URL(url) for url in URLS]
    httpx_direct = [str(url) for url in urls if any(p.matches(url) for p in patterns)]
    assert [str(url) for url in urls if proxies.direct(url)] == httpx_direct
    assert 0 < len(httpx_direct) < len(urls)


def test_thousands_of_no_proxy_entries_are_read_once(environ: pytest.MonkeyPatch) -> None:
    """A client (one per http run) uses ``NO_PROXY`` as read at start: httpx compiled a pattern
    per entry for each client it built (a second for 5 000 entries)."""
    names = [f"host{n}.example.com" for n in range(2000)]
    ranges = [f"10.{n // 256}.{n % 256}.0/24" for n in range(2000)]
    environ.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    environ.setenv("NO_PROXY", ",".join(names + ranges))
    read = proxy_routes()  # at start-up, as crontask run does
    compiled = 0
    real = URLPattern.__init__

    def counted(self: URLPattern, pattern: str) -> None:
        nonlocal compiled
        compiled += 1
        real(self, pattern)

    environ.setattr(URLPattern, "__init__", counted)
    for _ in range(2):
        asyncio.run(async_client(timeout=1).aclose())
    assert proxy_routes() is read
    assert compiled == 2  # each client's one mount pattern (http://), none per entry
