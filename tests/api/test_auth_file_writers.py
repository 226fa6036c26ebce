"""An auth file that another user may change (``secretfile``'s rule) is not used: at start
``crontask run`` stops in one line naming the file and what to do; read again at run time,
the settings read before stay in force, as for a broken file (``authfile``). Otherwise whoever
may write it adds an admin token for themselves within a second."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.api.auth import Role
from reconciler.api.authfile import AuthFile
from tests.api.conftest import STATIC_TOKENS, sha256

UNUSABLE = "auth file changed but cannot be used; the settings read before stay in force"


def write(path: Path, *roles: Role) -> None:
    tokens = "\n".join(
        f"  - {{name: {r.value}-bot, sha256: {sha256(STATIC_TOKENS[r])}, role: {r.value}}}"
        for r in roles
    )
    path.write_text(f"tokens:\n{tokens}\n")


def test_a_file_made_writable_by_others_leaves_the_settings_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "auth.yaml"
    write(path, Role.VIEWER)
    path.chmod(0o600)
    auth_file = AuthFile.open(path)
    path.chmod(0o666)  # a careless chmod, and then someone else's admin token
    write(path, Role.VIEWER, Role.ADMIN)
    with caplog.at_level(logging.ERROR, logger="crontask.api"):
        auth_file.refresh()
    assert [r.getMessage() for r in caplog.records] == [UNUSABLE]
    error = getattr(caplog.records[0], "fields", {})["error"]
    assert "anyone may write it (mode 0666)" in error
    assert [t.name for t in auth_file.current().tokens] == ["viewer-bot"]
    path.chmod(0o600)  # fixed: the file as it is now is taken
    auth_file.refresh()
    assert [t.name for t in auth_file.current().tokens] == ["viewer-bot", "admin-bot"]


def test_crontask_run_refuses_it_at_start_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "auth.yaml"
    write(config, Role.ADMIN)
    config.chmod(0o666)
    (tmp_path / "tasks").mkdir()
    argv = ["run", "tasks", "--allow-empty", "--auth-config", str(config)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *argv, "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    lines = []
    try:
        for line in proc.stderr:  # until it ends, or has started (then it took the file)
            lines.append(line)
            if "crontask started" in line:
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    err = "".join(lines)
    assert "crontask started" not in err
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert str(config) in err
    assert "chmod go-w" in err
