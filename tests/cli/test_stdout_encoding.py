"""A stdout whose encoding cannot hold a character of what crontask prints (``LC_ALL=C`` on an
old system, ``PYTHONIOENCODING=ascii`` or ``latin-1``): the character is written as its escape
(``\\u2713``), as Python writes it on stderr, and the command goes on. It was a traceback and
exit status 1, even for ``trigger`` after the server had taken the run: one who retried on that
status started the task twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from reconciler.cli.remote import SKIPPED
from tests.cli.hostile import Handler, HostileServer, crontask


def _crontask(encoding: str, *argv: str) -> tuple[int, str, str]:
    """``crontask ARGV...`` with ``PYTHONIOENCODING=encoding``: its status, and its stdout and
    stderr read in that encoding."""
    env = {k: v for k, v in os.environ.items() if k != "CRONTASK_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        env={**env, "PYTHONIOENCODING": encoding},
        capture_output=True,
        timeout=60,
        check=False,
    )
    codec = encoding.partition(":")[0]
    return done.returncode, done.stdout.decode(codec), done.stderr.decode(codec, "replace")


def _server(h: Handler) -> None:
    if "/runs" in h.path and h.command == "POST":
        answer = {"id": "ops.a.1", "status": "skipped", "reason": "Forbid", "message": "läuft ✓"}
        h.send(201, answer)
    else:
        h.send(200, {"items": [{"key": "ops/a", "state": "Bereit ✓ für", "error": "Fehler"}]})


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "ascii:strict"])
def test_a_character_stdout_cannot_hold_is_escaped(hostile: HostileServer, encoding: str) -> None:
    hostile.answer = _server
    code, out, err = _crontask(encoding, "tasks", "--server", hostile.url)
    assert "Traceback" not in err, err
    assert code == 0, err
    assert "Bereit \\u2713" in out, out
    assert ("f\\xfcr" if encoding.startswith("ascii") else "für") in out, out


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_trigger_taken_is_told_whatever_stdout_holds(hostile: HostileServer, encoding: str) -> None:
    hostile.answer = _server
    code, out, err = _crontask(encoding, "trigger", "ops/a", "--server", hostile.url)
    assert "Traceback" not in err, err
    assert code == SKIPPED, err  # the answer is a skip: told, with its own status
    assert "\\u2713" in out, out


def test_json_is_unchanged_on_a_utf8_stdout(hostile: HostileServer) -> None:
    hostile.answer = _server
    env = {"PYTHONIOENCODING": "utf-8"}
    done = crontask("tasks", "--server", hostile.url, "--json", env=env, timeout=60)
    assert done.code == 0, done.err
    assert json.loads(done.out)["items"][0]["state"] == "Bereit ✓ für"
