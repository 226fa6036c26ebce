"""``--git-token-file`` is read bounded at each sync: a FIFO in its place (or a device, or a
file over 64 KiB) makes the sync fail at once with one line naming the file, instead of
blocking the sync for ever (or growing memory without end); the rest of crontask runs on."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Crontask

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", ["fifo", "big"])
def test_a_token_file_that_cannot_be_a_token_fails_the_sync_at_once(
    crontask: Callable[..., Crontask], tmp_path: Path, kind: str
) -> None:
    token = tmp_path / "token"
    if kind == "fifo":
        os.mkfifo(token)
    else:
        token.write_bytes(b"t" * (64 * 1024 + 1))
    app = crontask(
        "--git", "https://127.0.0.1:1/x.git", "--git-token-file", str(token), "--allow-empty"
    )
    app.wait_log("git sync failed")
    line = next(x for x in app.log().splitlines() if "git sync failed" in x)
    assert f"cannot read token file {token}: " in line
    assert ("not a regular file" if kind == "fifo" else "64 KiB") in line
