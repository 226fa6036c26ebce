"""``--listen`` on loopback however the address is spelled: ``127.1`` and ``::ffff:127.0.0.1``
(IPv4-mapped) were taken for another address, so without auth ``crontask run`` refused to
start (or, with ``--insecure-no-auth``, warned and its page's header said anyone may use it),
and with auth ``Host`` went unchecked. Nothing is called loopback that the bind does not make
loopback: not ``127.0.0.1.`` (the resolver reads it as a name), nor an unspecified address,
nor a name other than ``localhost``. (``--listen [::ffff:127.0.0.1]:PORT`` cannot be bound:
the socket takes IPv6 only; a ``Host`` header may name it.) The real program, its real
arguments, real HTTP."""

from __future__ import annotations

import hashlib
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from reconciler.api.auth import check_listen
from reconciler.api.hosts import host_name, is_loopback_name
from reconciler.loopback import is_loopback
from tests.helpers import free_port, start_crontask_run, wait_for

LOOPBACK = [
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "127.1",
    "127.0.1",
    "0x7f.1",
    "0177.0.0.1",
    "2130706433",
    "localhost",
    "LocalHost",
    "::1",
    "[::1]",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
    "::ffff:7f00:2",
]
NOT_LOOPBACK = [
    "0.0.0.0",  # every interface
    "0",
    "::",
    "[::]",
    "::ffff:0.0.0.0",
    "::127.0.0.1",  # IPv4-compatible: no loopback
    "128.0.0.1",
    "10.1",
    "127.0.0.1.",
    "127.1.",
    "localhost.",
    "localhost.example",
    "127.0.0.1.example",
    "0x7f.1x",
    "127.1 x",
    "2001:db8::1",
    "",
]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback(host: str) -> None:
    assert is_loopback(host)
    check_listen(host, None, insecure_no_auth=False)  # no auth needed


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ValueError, match="without authentication"):
        check_listen(host, None, insecure_no_auth=False)


@pytest.mark.parametrize(
    ("header", "loopback"),
    [("127.1:8080", True), ("[::ffff:127.0.0.1]:80", True), ("10.1:8080", False)],
)
def test_host_header(header: str, loopback: bool) -> None:
    assert is_loopback_name(host_name(header)) is loopback


@pytest.mark.e2e
def test_served_without_auth_as_loopback(tmp_path: Path) -> None:
    port = free_port()
    proc, log = start_crontask_run(tmp_path, "--listen", f"127.1:{port}")
    try:
        _wait_listening(proc, log)
        html = httpx.get(f"http://127.1:{port}/", timeout=20).text  # Host: 127.1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert "open (loopback)" in html
    assert "without authentication" not in log.read_text()


@pytest.mark.e2e
def test_with_auth_the_host_is_checked(tmp_path: Path) -> None:
    """On loopback the address is the fence, and a page that rebinds its name to it is
    refused by its ``Host`` (api/hosts.py); on ``127.1`` none was checked."""
    token = "t" * 32
    digest = hashlib.sha256(token.encode()).hexdigest()
    auth = tmp_path / "auth.yaml"
    auth.write_text(f"tokens:\n  - {{name: ci, sha256: {digest}, role: viewer}}\n")
    port = free_port()
    proc, log = start_crontask_run(
        tmp_path, "--listen", f"127.1:{port}", "--auth-config", str(auth)
    )
    try:
        _wait_listening(proc, log)
        url = f"http://127.1:{port}/api/v1/tasks"
        bearer = {"Authorization": f"Bearer {token}"}
        rebound = httpx.get(url, headers={**bearer, "Host": f"attacker.example:{port}"})
        own = httpx.get(url, headers=bearer, timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert rebound.status_code == 421
    assert own.status_code == 200, own.text


def _wait_listening(proc: subprocess.Popen[bytes], log: Path) -> None:
    wait_for(
        "the api listening or an exit",
        lambda: "api listening" in log.read_text() or proc.poll() is not None,
        30,
    )
    assert proc.poll() is None, log.read_text()
