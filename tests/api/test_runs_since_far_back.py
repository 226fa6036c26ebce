"""``crontask runs --since D --server URL`` with a duration reaching before 1970 (the CLI
takes up to 100 years) asks from 1970 on, which the API accepts and which holds every run;
before, the server refused it (422) where the same command on the store answered. And a 422's
line says each problem once: its detail and its list of errors repeat one another."""

from __future__ import annotations

import pytest

from reconciler.api.auth import Role
from reconciler.cli import client
from reconciler.cli.main import build_parser
from tests.api.conftest import STATIC_TOKENS


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
