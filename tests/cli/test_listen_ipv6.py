"""``--listen`` on IPv6: ``[::1]:PORT`` and ``[::]:PORT`` serve the API and its probes (a pod
with IPv6 only has nothing else), and a host name or IPv4 address is served as before."""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reconciler.cli.daemon import listening_socket
from tests.cli.hostile import crontask
from tests.helpers import wait_for


def _free_ipv6_port() -> int | None:
    """A free port on ::1, or None when this host has no IPv6 loopback to bind."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
            return int(probe.getsockname()[1])
    except OSError:
        return None


needs_ipv6 = pytest.mark.skipif(_free_ipv6_port() is None, reason="no IPv6 loopback here")


def _healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"crontask run exited ({proc.returncode}):\n{log.read_text()}")
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _run_and_probe(tmp_path: Path, urls: list[str], *argv: str) -> None:
    """``crontask run TASKS ARGV...`` as a process of its own answers each of ``urls`` with
    200."""
    (tmp_path / "tasks").mkdir()
    log = tmp_path / "run.log"
    command = [sys.executable, "-m", "reconciler", "run", str(tmp_path / "tasks"), *argv]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--allow-empty", "--state-dir", str(tmp_path / "state")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "CRONTASK_TOKEN"},
        )
    try:
        for url in urls:
            wait_for(f"{url} to answer", functools.partial(_healthy, url, proc, log))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Address family" not in log.read_text()


@needs_ipv6
def test_the_api_answers_on_the_ipv6_loopback(tmp_path: Path) -> None:
    port = _free_ipv6_port()
    # The API too: without auth it answers a Host that names a loopback address, [::1] one.
    urls = [f"http://[::1]:{port}/healthz", f"http://[::1]:{port}/api/v1/tasks"]
    _run_and_probe(tmp_path, urls, "--listen", f"[::1]:{port}")


@needs_ipv6
def test_every_ipv6_address_with_an_auth_file_answers_on_ipv6_and_ipv4(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"t0ken").hexdigest()
    auth = tmp_path / "auth.yaml"
    auth.write_text(f"tokens:\n  - {{name: ci, sha256: {digest!r}, role: viewer}}\n")
    port = _free_ipv6_port()
    argv = ("--listen", f"[::]:{port}", "--auth-config", str(auth))
    urls = [f"http://[::1]:{port}/healthz"]
    if socket.has_dualstack_ipv6():
        urls.append(f"http://127.0.0.1:{port}/healthz")
    _run_and_probe(tmp_path, urls, *argv)


@needs_ipv6
def test_every_ipv6_address_takes_ipv4_clients_too_where_the_host_can() -> None:
    if not socket.has_dualstack_ipv6():
        pytest.skip("this host cannot take IPv4 on an IPv6 socket")
    with listening_socket("::", 0) as server:
        port = server.getsockname()[1]
        for address in ("::1", "127.0.0.1"):
            client = socket.create_connection((address, port), timeout=5)
            accepted, _ = server.accept()
            with client, accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.parametrize("listen", ["::1:8080", "fd00::1:8080", "[localhost]:8080"])
def test_an_ipv6_address_out_of_brackets_is_a_usage_error(tmp_path: Path, listen: str) -> None:
    # `::1:8080` is the address ::1:8080 without a port as much as ::1 with one.
    (tmp_path / "tasks").mkdir()
    state = tmp_path / "state"
    done = crontask(
        "run", str(tmp_path / "tasks"), "--state-dir", str(state), "--listen", listen, timeout=60
    )
    assert done.code == 2, done.err
    assert done.err.splitlines()[-1].startswith("crontask run: error: argument --listen: ")
    assert "brackets" in done.err
    assert not state.exists()
