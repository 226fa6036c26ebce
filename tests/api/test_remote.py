"""End to end: the API served by real uvicorn on 127.0.0.1, driven by the CLI clients (httpx)."""

from __future__ import annotations

import argparse
import json
import socket

import httpx
import pytest

from reconciler.api.auth import Role
from reconciler.cli import client, remote
from reconciler.controller.view import SourceStatus
from tests.api.conftest import STATIC_TOKENS
from tests.api.fakes import FakeRuntime, view


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="crontask")
    commands = parser.add_subparsers(dest="command", required=True)
    remote.add_parsers(commands)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error: argparse's one line and exit 2
        return int(str(exc.code))
    code: int = args.handler(args)
    return code


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONTASK_TOKEN", STATIC_TOKENS[Role.OPERATOR])


@pytest.mark.usefixtures("operator")
def test_tasks_table_and_json(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("tasks", "--server", server) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["TASK", "STATE", "SCHEDULE", "NEXT", "RUN", "LAST", "RUN", "SOURCE"]
    assert any(line.startswith("ops/broken") and "Error" in line for line in lines)
    assert "ops/broken: tasks/broken.yaml:7:19" in err

    assert cli("tasks", "--server", server, "--namespace", "ops", "--json") == 0
    body = json.loads(capsys.readouterr().out)
    assert [t["key"] for t in body["items"]] == ["ops/backup", "ops/broken"]


@pytest.mark.usefixtures("operator")
def test_trigger_and_skip(
    server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRONTASK_SERVER", server)
    assert cli("trigger", "default/hello") == 0
    assert "run default.hello." in capsys.readouterr().out
    assert cli("trigger", "default/hello", "--json") == remote.SKIPPED
    assert json.loads(capsys.readouterr().out)["reason"] == "ConcurrencyForbid"
    assert cli("trigger", "default/nope") == 1
    assert capsys.readouterr().err == "crontask: 404 Not Found: no task default/nope\n"
    assert cli("trigger", "nope") == 2


@pytest.mark.usefixtures("operator")
def test_an_unknown_task_names_the_definition_errors(
    server: str, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task whose file was broken before its first read was never declared: the 404 says
    that the sources have errors, and where they are listed."""
    runtime.source_list = [SourceStatus("file", "tasks", tasks=1, errors=2)]
    assert cli("trigger", "default/nope", "--server", server) == 1
    assert capsys.readouterr().err == (
        "crontask: 404 Not Found: no task default/nope (the sources have 2 definition errors,"
        " and a task whose definition has one is not declared: GET /api/v1/sources lists them)\n"
    )
    got = httpx.get(
        f"{server}/api/v1/tasks/default/nope",
        headers={"Authorization": f"Bearer {STATIC_TOKENS[Role.OPERATOR]}"},
    )
    assert got.status_code == 404
    assert "2 definition errors" in got.json()["detail"]


def test_errors_are_one_line(
    server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("tasks", "--server", server) == 1
    assert capsys.readouterr().err == (
        "crontask: 401 Unauthorized: a valid bearer token is required; no token was sent: "
        "set $CRONTASK_TOKEN\n"
    )
    monkeypatch.setenv("CRONTASK_TOKEN", STATIC_TOKENS[Role.VIEWER])
    assert cli("trigger", "default/hello", "--server", server) == 1
    err = capsys.readouterr().err
    assert err.startswith("crontask: 403 Forbidden: viewer-bot has role viewer")
    assert err.count("\n") == 1


def test_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    assert cli("tasks", "--server", url) == 1
    assert capsys.readouterr().err == (
        f"crontask: cannot reach crontask at {url} (is `crontask run` running?)\n"
    )


@pytest.mark.usefixtures("operator")
def test_fetch_runs_follows_pages_up_to_the_limit(server: str, runtime: FakeRuntime) -> None:
    viewer = STATIC_TOKENS[Role.VIEWER]
    for _ in range(3):
        client.request(
            server, STATIC_TOKENS[Role.OPERATOR], "POST", "/api/v1/tasks/ops/backup/runs"
        )
    runs = client.fetch_runs(server, viewer, {"task": "ops/backup", "status": None}, 2)
    assert len(runs) == 2
    every = client.fetch_runs(server, viewer, {"task": "ops/backup"}, 100)
    assert len(every) == 3
    assert [r["id"] for r in every[:2]] == [r["id"] for r in runs]
    one = client.fetch_run(server, viewer, runs[0]["id"])
    assert one["attempts"][0]["id"] == runs[0]["id"]
    with pytest.raises(client.RemoteError, match=r"422 Invalid request: query\.task"):
        client.fetch_runs(server, viewer, {"task": "not a key"}, 1)


def test_fetch_tasks_follows_pages(server: str, runtime: FakeRuntime) -> None:
    for i in range(1203):  # three pages of the default 500
        runtime.views[f"bulk/t{i:04d}"] = view(f"t{i:04d}", "bulk")
    keys = [t["key"] for t in client.fetch_tasks(server, STATIC_TOKENS[Role.VIEWER])]
    assert keys == sorted(runtime.views)
    only = client.fetch_tasks(server, STATIC_TOKENS[Role.VIEWER], {"namespace": "ops"})
    assert [t["key"] for t in only] == ["ops/backup", "ops/broken"]
