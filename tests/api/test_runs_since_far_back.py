"""``crontask runs --since D --server URL`` with a duration reaching before 1970 (the CLI
takes up to 100 years) asks from 1970 on, which the API accepts and which holds every run;
before, the server refused it (422) where the same command on the store answered. And a 422's
line says each problem once: its detail and its list of errors repeat one another."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.cli import client
from reconciler.cli.main import build_parser
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS
from tests.api.fakes import FakeRuntime


@pytest.fixture
def server(runtime: FakeRuntime, auth_config: AuthConfig) -> Iterator[str]:
    app = create_app(runtime, auth=auth_config, metrics=Metrics())
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def runs(*argv: str) -> int:
    args = build_parser().parse_args(["runs", *argv])
    code: int = args.handler(args)
    return code


def test_a_since_before_1970_reads_every_run(
    server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRONTASK_TOKEN", STATIC_TOKENS[Role.VIEWER])
    assert runs("--server", server, "--json") == 0
    every = capsys.readouterr().out
    assert runs("--since", "21900d", "--server", server, "--json") == 0
    assert capsys.readouterr().out == every


def test_a_422_says_each_problem_once(server: str) -> None:
    line = ""
    with pytest.raises(client.RemoteError) as raised:
        client.fetch_runs(
            server, STATIC_TOKENS[Role.VIEWER], {"since": "1900-01-01T00:00:00+00:00"}, 10
        )
    line = str(raised.value)
    assert line.count("must be between") == 1, line
