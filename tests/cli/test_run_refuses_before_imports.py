"""``crontask run`` refuses what it is given before it loads what it would serve with: a
usage error came after 1-2 s of imports (the web app, FastAPI, uvicorn, the Kubernetes client,
SQLAlchemy). The real command, under ``python -X importtime``, which names every module
imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WEB_STACK = ("fastapi", "starlette", "uvicorn", "reconciler.web", "reconciler.api.app")
SERVER_STACK = (*WEB_STACK, "kubernetes", "sqlalchemy", "reconciler.controller.runtime")


def refused(*argv: str, cwd: Path) -> tuple[str, set[str]]:
    """Run ``crontask run ARGV``, which must be refused as a usage error (exit status 2): its
    message, and the modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONTASK_")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciler", "run", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 2, done.stderr
    imported = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "reconciler.cli.main" in imported  # importtime did name the modules
    return "\n".join(said), imported


def loaded(imported: set[str], stack: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported if any(m == s or m.startswith(f"{s}.") for s in stack))


def test_a_missing_folder_is_refused_before_the_server_stack_is_imported(tmp_path: Path) -> None:
    said, imported = refused(str(tmp_path / "nonexistent"), cwd=tmp_path)
    assert said.endswith(f"crontask: no such file or directory: {tmp_path / 'nonexistent'}")
    assert loaded(imported, SERVER_STACK) == []


def test_a_listen_address_without_auth_is_refused_before_the_server_stack(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    said, imported = refused("tasks", "--listen", "0.0.0.0:0", cwd=tmp_path)
    assert "--insecure-no-auth" in said, said
    assert loaded(imported, SERVER_STACK) == []


def test_a_state_directory_others_may_write_is_refused_before_the_web_stack(
    tmp_path: Path,
) -> None:
    """The state directory is checked by ``controller.state_open``, before the runtime, the
    API's app, the page or the HTTP server load (``test_refusals_before_heavy_imports`` holds
    that the Kubernetes client does not load either)."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "state").chmod(0o777)
    said, imported = refused("tasks", "--state-dir", "state", "--listen", "off", cwd=tmp_path)
    assert said.startswith("crontask: refusing state directory state: "), said
    assert loaded(imported, WEB_STACK) == []
