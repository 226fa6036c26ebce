"""``crontask runs`` shows a run's times in UTC, marked ``Z``: a time a server gives with
another offset (``+01:00``) was labelled ``Z`` as it was, an hour off."""

from __future__ import annotations

import pytest

from reconciler.cli.history import _short
from tests.cli.hostile import Handler, HostileServer, cli


def test_an_offset_is_converted_to_utc() -> None:
    assert _short("2026-11-26T22:30:40+01:00") == "2026-11-26 21:30:40Z"
    assert _short("2026-11-26T21:30:40.123456Z") == "2026-11-26 21:30:40Z"
    assert _short("2026-11-26T21:30:40+00:00") == "2026-11-26 21:30:40Z"
    assert _short("2026-11-26T16:30:40-05:00") == "2026-11-26 21:30:40Z"
    # Without an offset the time's zone is unknown: shown as given, not labelled UTC.
    assert _short("2026-11-26T21:30:40") == "2026-11-26 21:30:40"
    assert _short("soon") == "soon"
    assert _short(None) == ""


def test_runs_from_a_server(hostile: HostileServer, capsys: pytest.CaptureFixture[str]) -> None:
    run = {
        "id": "ops.a.20261126T213040Z",
        "task": "ops/a",
        "scheduledTime": "2026-11-26T22:30:40+01:00",
        "startTime": "2026-11-27T00:30:41+03:00",
    }

    def answer(h: Handler) -> None:
        if h.path.startswith("/api/v1/runs/"):
            h.send(200, {"attempts": [run]})
        else:
            h.send(200, {"items": [run]})

    hostile.answer = answer
    assert cli("runs", "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    assert "2026-11-26 21:30:40Z" in out.splitlines()[1]
    assert cli("runs", "--server", hostile.url, "--id", run["id"]) == 0
    out, _ = capsys.readouterr()
    assert "  scheduled: 2026-11-26 21:30:40Z\n" in out
    assert "  started:   2026-11-26 21:30:41Z\n" in out
