"""The warning that ``$CRONTASK_TOKEN`` goes over plain ``http://`` to another machine is said
once a command, however many requests it makes: ``trigger`` asking again after a
``not-started`` 503 said it five times, ``plan --server`` twice (its sources, its tasks).

The server is "another machine" by name (``crontask.invalid``, never resolved): the test's
server answers for it as the proxy ``$HTTP_PROXY`` names, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.hostile import Handler, HostileServer, crontask
from tests.cli.test_inspect import doc

TOKEN = "Tok3nForTheServer"  # noqa: S105 - a test value
REMOTE = "http://crontask.invalid:8080"
WARNING = "crontask: warning: $CRONTASK_TOKEN goes to crontask.invalid over plain http://"
NOT_STARTED = {
    "type": "https://crontask.dev/problems/not-started",
    "title": "Service Unavailable",
    "status": 503,
    "detail": "run of ops/a not started: this replica may not start runs now; retry later",
}


def _env(proxy: HostileServer) -> dict[str, str]:
    return {"HTTP_PROXY": proxy.url, "NO_PROXY": "", "CRONTASK_TOKEN": TOKEN}


def test_trigger_asked_again_warns_once(hostile: HostileServer) -> None:
    tries: list[str] = []

    def answer(h: Handler) -> None:
        tries.append(h.path)
        if len(tries) < 4:
            data = json.dumps(NOT_STARTED).encode()
            h.send_response(503)
            h.send_header("Content-Type", "application/problem+json")
            h.send_header("Retry-After", "0")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        else:
            h.send(202, {"id": "ops.a.1", "task": "ops/a", "status": "running", "attempt": 1})

    hostile.answer = answer
    done = crontask("trigger", "ops/a", "--server", REMOTE, env=_env(hostile), timeout=60)
    assert done.code == 0, done.err
    assert len(tries) == 4  # asked again, through the proxy
    assert all(path.startswith(f"{REMOTE}/api/v1/tasks/ops/a/runs") for path in tries)
    assert done.err.count(WARNING) == 1, done.err


def test_plan_against_a_server_warns_once(hostile: HostileServer, tmp_path: Path) -> None:
    def answer(h: Handler) -> None:
        h.send(200, {"items": []})  # no sources said, no tasks

    hostile.answer = answer
    (tmp_path / "a.yaml").write_text(doc("a", "@daily"))
    done = crontask("plan", str(tmp_path), "--server", REMOTE, env=_env(hostile), timeout=60)
    assert done.code == 0, done.err
    assert len(hostile.requests) >= 2  # its sources, its tasks
    assert done.err.count(WARNING) == 1, done.err
