"""``crontask run`` says what it starts with in its first line, "crontask starting", once its
state directory and run store are open (a refusal there is one line, alone) and before anything
else that may take long: a first git clone, a cluster's CronTasks, a large folder. Until
"crontask started" (unchanged: scripts wait for it), which comes once the first pass is done,
nothing else was said. The line names no secret: the store's and the git URL's passwords and
tokens are left out."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
from pathlib import Path

import pytest

from reconciler import __version__
from reconciler.controller.options import HaOptions, Options
from reconciler.controller.runtime import log_starting
from reconciler.sources.git import GitOptions
from reconciler.sources.kubernetes import KubernetesOptions
from tests.helpers import start_crontask_run, wait_for

PATIENCE = 30.0
DB_PASSWORD = "DbPassw0rdSecret"  # noqa: S105 - a test value
GIT_TOKEN = "GitTok3nSecret"  # noqa: S105 - a test value


def starting(text: str) -> str | None:
    found = re.search(r'^.*msg="crontask starting".*$', text, re.MULTILINE)
    return found.group(0) if found else None


def test_the_line_comes_while_the_first_clone_does_not_answer_yet(tmp_path: Path) -> None:
    # A git server that takes connections (the kernel completes them) and never says a word.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    git = f"https://ops:{GIT_TOKEN}@127.0.0.1:{port}/tasks.git"
    proc, log = start_crontask_run(tmp_path, "--listen", "off", "--git", git, task=None)
    try:
        line = wait_for("the starting line", lambda: starting(log.read_text()), PATIENCE)
        # Said while the start waits for the clone: the remote has not answered a word.
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(PATIENCE)
    finally:
        proc.kill()
        proc.wait()
        silent.close()
    text = log.read_text()
    assert status == 128 + signal.SIGTERM, text
    assert f"version={__version__} " in line, line
    assert f"pid={proc.pid} " in line, line
    assert f"store={Path('state') / 'runs.db'} " in line, line
    assert "paths=tasks " in line, line
    assert f"git=https://127.0.0.1:{port}/tasks.git" in line, line
    assert "kubernetes=" not in line, line
    assert "ha=" not in line, line
    assert GIT_TOKEN not in text, text
    assert "crontask started" not in text, text


def test_the_line_comes_first_and_crontask_started_follows(tmp_path: Path) -> None:
    proc, log = start_crontask_run(tmp_path, "--listen", "off")
    try:
        wait_for("crontask started", lambda: "crontask started" in log.read_text(), PATIENCE)
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(PATIENCE)
    lines = log.read_text().splitlines()
    assert status == 0, lines
    assert 'msg="crontask starting"' in lines[0], lines
    assert f"store={Path('state') / 'runs.db'} " in lines[0], lines
    assert [line for line in lines if "crontask start" in line][1:] == [
        line for line in lines if 'msg="crontask started" instance=' in line
    ], lines


def fields_of(caplog: pytest.LogCaptureFixture) -> dict[str, object]:
    (record,) = [r for r in caplog.records if r.getMessage() == "crontask starting"]
    return {k: v for k, v in getattr(record, "fields", {}).items() if k not in ("version", "pid")}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            Options(paths=[Path("a"), Path("b")], state_dir=Path("/var/lib/crontask")),
            {"store": "/var/lib/crontask/runs.db", "paths": "a,b"},
        ),
        (
            Options(
                db_url=f"postgresql+psycopg://ops:{DB_PASSWORD}@db/crontask?password={DB_PASSWORD}",
                git=GitOptions(url=f"https://{GIT_TOKEN}@git.example/ops/tasks.git"),
                kubernetes=KubernetesOptions(all_namespaces=True),
                ha=HaOptions(),
            ),
            {
                "store": "postgresql+psycopg://ops@db/crontask?password=***",
                "git": "https://git.example/ops/tasks.git",
                "kubernetes": "*",
                "ha": True,
            },
        ),
        # No URL: the store refuses it, and its text may be the password itself.
        (Options(db_url=f"ops:{DB_PASSWORD}@db/crontask"), {"store": "***"}),
        (Options(kubernetes=KubernetesOptions(namespace="batch")), {"kubernetes": "batch"}),
        (Options(kubernetes=KubernetesOptions()), {"kubernetes": "(current)"}),
    ],
)
def test_what_the_line_says(
    caplog: pytest.LogCaptureFixture, options: Options, expected: dict[str, object]
) -> None:
    with caplog.at_level(logging.INFO, logger="crontask"):
        log_starting(options)
    said = fields_of(caplog)
    assert {k: v for k, v in said.items() if v is not None} == {
        "store": ".crontask/runs.db",
        **expected,
    }
    assert DB_PASSWORD not in caplog.text
    assert GIT_TOKEN not in caplog.text
    assert os.getpid() == getattr(caplog.records[0], "fields", {})["pid"]
