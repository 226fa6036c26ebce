"""``crontask trigger`` whose answer cannot be written (stdout a full disk) after the server
started the run: exit status 74 (EX_IOERR) as for any output not written, and stderr says
that the run was started, with its key and id, so that whoever reads it does not trigger it
again. It said only ``crontask: cannot write output: ...``, and a wrapper that retries on a
status other than 0 ran the task twice. A real ``crontask run`` and real subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from reconciler.cli.main import OUTPUT_FAILED
from tests.helpers import serve_http, start_crontask_run, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("as_json", [False, True])
def test_a_started_run_whose_answer_is_not_written_is_named_on_stderr(
    tmp_path: Path, as_json: bool
) -> None:
    proc, log = start_crontask_run(tmp_path, "--listen", "127.0.0.1:0")  # no port to pick
    try:
        wait_for("crontask started", lambda: _started(proc, log), 60)
        listening = wait_for(
            "the api listening line",
            lambda: re.search(r'msg="api listening" address=(\S+)', log.read_text()),
        )
        server = f"http://{listening.group(1)}"
        done = trigger_into_full(server, *(["--json"] if as_json else []))
        runs = httpx.get(f"{server}/api/v1/runs", params={"task": "default/t"}, timeout=10)
        runs.raise_for_status()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    (run,) = runs.json()["items"]  # it ran, once
    assert done.returncode == OUTPUT_FAILED
    said = done.stderr.splitlines()
    assert len(said) == 1, said
    assert re.fullmatch(
        rf"crontask: cannot write output: No space left on device; default/t: run "
        rf"{re.escape(run['id'])} started all the same: see `crontask runs default/t "
        rf"--server {re.escape(server)}` before triggering it again",
        said[0],
    ), said


def trigger_into_full(server: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """``crontask trigger default/t`` of ``server``, its stdout a full disk."""
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "trigger",
                "default/t",
                "--server",
                server,
                *flags,
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT), "CRONTASK_TOKEN": ""},
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )


def _started(proc: subprocess.Popen[bytes], log: Path) -> bool:
    text = log.read_text()
    assert proc.poll() is None, text  # it ended: why is in its log
    return "crontask started" in text


class _Skipping(BaseHTTPRequestHandler):
    """A server that takes every trigger and records it skipped (a Forbid task's run going)."""

    def do_POST(self) -> None:
        body = json.dumps(
            {"id": "default.t.x", "task": "default/t", "status": "skipped", "reason": "Forbid"}
        ).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_skipped_run_whose_answer_is_not_written_says_nothing_ran() -> None:
    """A run the server recorded skipped ran nothing: triggering again is no second run, and
    stderr says so rather than 'started all the same'."""
    with serve_http(_Skipping) as server:
        done = trigger_into_full(server)
    assert done.returncode == OUTPUT_FAILED
    assert done.stderr.splitlines() == [
        "crontask: cannot write output: No space left on device; default/t: run default.t.x "
        "recorded skipped (nothing ran)"
    ]
