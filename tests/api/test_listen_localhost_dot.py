"""``crontask run --listen localhost.:PORT`` without auth is refused, as any name but
``localhost`` is: with the root's dot the name is looked up in DNS, not in /etc/hosts
(``cli.credentials`` holds the same for the client), and may name another address of this
machine, where the API would answer anyone as the admin. It passed the no-auth check as
loopback, then was resolved through DNS. The real program, its real arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.api.auth import is_loopback
from tests.helpers import crontask_cli

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("host", ["localhost.", "LocalHost."])
def test_localhost_with_the_root_dot_is_not_loopback(tmp_path: Path, host: str) -> None:
    (tmp_path / "tasks").mkdir()
    done = crontask_cli(
        "run", "tasks", "--state-dir", "state", "--listen", f"{host}:0", cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(
        f"crontask run: error: refusing to serve the API on {host} without authentication: "
        "anyone who can reach it could create, delete and run tasks. Give an auth file "
        "(tokens or jwt), listen on 127.0.0.1, or pass --insecure-no-auth if something in "
        "front of crontask already authenticates every request.\n"
    ), done.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was made
    assert not is_loopback(host)
    assert is_loopback(host.rstrip("."))  # as it always was
