"""``crontask run --listen``: the log names the port bound (``:0`` lets the kernel pick one),
and a non-loopback address without authentication is a usage error (exit status 2: an option
without the one it needs, as README's exit statuses say)."""

from __future__ import annotations

import re
import signal
import socket
from pathlib import Path

from tests.helpers import crontask_cli, start_crontask_run, wait_for


def test_listening_on_port_0_logs_the_port_bound(tmp_path: Path) -> None:
    proc, log = start_crontask_run(tmp_path, "--listen", "127.0.0.1:0")
    try:
        line = wait_for(
            "the api listening line",
            lambda: re.search(r'msg="api listening" address=(\S+)', log.read_text()),
        )
        host, _, port = line.group(1).rpartition(":")
        assert host == "127.0.0.1"
        assert port != "0", log.read_text()
        socket.create_connection((host, int(port)), timeout=10).close()  # it is the one bound
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_a_non_loopback_address_without_auth_is_a_usage_error(tmp_path: Path) -> None:
    result = crontask_cli("run", str(tmp_path), "--listen", "10.1.2.3:80", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("usage: crontask run"), result.stderr
    assert "refusing to serve the API on 10.1.2.3 without authentication" in result.stderr
