"""The other spellings of this machine are asked directly too, never through the proxy
``$HTTP_PROXY`` names: ``127.1``, ``0x7f.1`` and ``2130706433`` (what ``inet_aton``, and so the
system's resolver, reads as ``127.0.0.1``), and the unspecified addresses ``0.0.0.0`` and
``[::]`` (a connection to them reaches this machine). They went through the proxy with
``$CRONTASK_TOKEN``, and were warned of as plain http to another machine. No name is looked up
to tell, and they are read as the API reads ``--listen`` (``reconciler.loopback``).
``localhost.`` is not among them: a name with the root's dot is looked up in DNS, not in
``/etc/hosts``, so it may be any machine; it was taken for this one, and so asked directly,
without the plain-http warning. Nor is ``127.0.0.1.``: the resolver reads no address with a
trailing dot, but looks it up as a name in DNS (glibc), and the token went to whatever DNS
answered, directly and unwarned."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.cli.credentials import is_loopback
from tests.cli.hostile import HostileServer, crontask
from tests.cli.test_server_credentials import TOKEN, Proxy, authorization, proxy_server

LOCAL = [
    "127.0.0.1",
    "127.1",
    "127.255.255.254",
    "0x7f.1",
    "0177.0.0.1",
    "2130706433",
    "localhost",
    "LOCALHOST",
    "0.0.0.0",
    "0",
    "[::]",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:0.0.0.0]",
]
ELSEWHERE = [
    "127.0.0.1.",  # a name to the resolver: looked up in DNS
    "127.1.",
    "128.0.0.1",
    "10.0.0.1",
    "1.2.3.4.",
    "localhost.",
    "LOCALHOST.",
    "localhost.example",
    "localhost..",
    "127.0.0.1.example",
    "example.127.0.0.1",
    "0x7f.1x",
    "127.0.0.1%20x",
    "[2001:db8::1]",
    "crontask.invalid",
]


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with proxy_server() as served:
        yield served


@pytest.mark.parametrize("host", LOCAL)
def test_this_machine(host: str) -> None:
    assert is_loopback(f"http://{host}:8080")


@pytest.mark.parametrize("host", ELSEWHERE)
def test_another_machine(host: str) -> None:
    assert not is_loopback(f"http://{host}:8080")


@pytest.mark.parametrize("host", ["127.1", "0x7f.1", "2130706433", "0.0.0.0"])
def test_asked_directly_with_the_token(hostile: HostileServer, proxy: Proxy, host: str) -> None:
    seen: list[str] = []
    hostile.answer = authorization(seen)
    server = hostile.url.replace("127.0.0.1", host)
    env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "", "CRONTASK_TOKEN": TOKEN}
    done = crontask("tasks", "--server", server, env=env, timeout=60)
    assert done.code == 0, done.err
    assert proxy.seen == []
    assert seen == [f"Bearer {TOKEN}"]
    assert done.err == ""  # no warning: the token does not leave the machine


def test_unspecified_never_through_the_proxy(hostile: HostileServer, proxy: Proxy) -> None:
    # Whether it reaches the test's server depends on this machine's IPv6: the token must not
    # reach the proxy either way.
    server = hostile.url.replace("127.0.0.1", "[::]")
    env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "", "CRONTASK_TOKEN": TOKEN}
    done = crontask("tasks", "--server", server, env=env, timeout=60)
    assert "Traceback" not in done.err, done.err
    assert proxy.seen == []
    assert "plain http://" not in done.err


def test_an_address_with_the_roots_dot_is_a_name(hostile: HostileServer, proxy: Proxy) -> None:
    """``127.0.0.1.`` is looked up in DNS: as any other machine's name it goes through the
    proxy the environment names, and the token over plain http is warned of (it went to
    whatever DNS answered, directly, unwarned)."""
    seen: list[str] = []
    hostile.answer = authorization(seen)
    server = hostile.url.replace("127.0.0.1", "127.0.0.1.")
    env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "", "CRONTASK_TOKEN": TOKEN}
    done = crontask("tasks", "--server", server, env=env, timeout=60)
    assert done.code == 0, done.err
    assert seen == []
    assert [path for path, _ in proxy.seen] == [f"{server}/api/v1/tasks"]
    assert "$CRONTASK_TOKEN goes to 127.0.0.1. over plain http://" in done.err
