"""``crontask runs --server`` asks again with smaller pages when a page's answer is refused as
too large: a server before 0.4 (no byte bound on a runs page) answered ``?limit=1000`` of
runs with long messages in 128 MB, and the command failed where ``--limit 100`` worked."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.cli import client
from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, cli

RUNS = 300  # the server's runs, newest first
FITS = 70  # the largest page whose answer is under the client's bound


def run(i: int) -> dict[str, object]:
    return {"id": f"ops.long.{i:04d}", "task": "ops/long", "status": "failed", "attempt": 1}


def large_pages(h: Handler) -> None:
    """Pages of up to ``limit`` runs; a page of more than FITS says it is larger than the
    client takes (its Content-Length: nothing more is sent, the client hangs up)."""
    query = parse_qs(urlsplit(h.path).query)
    limit = int(query["limit"][0])
    start = int(query.get("continue", ["0"])[0])
    if limit > FITS:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(client.MAX_ANSWER_BYTES + 1))
        h.end_headers()
        return
    end = min(start + limit, RUNS)
    following = str(end) if end < RUNS else None
    h.send(200, {"items": [run(i) for i in range(start, end)], "metadata": {"continue": following}})


def limits(server: HostileServer) -> list[int]:
    return [int(parse_qs(urlsplit(p).query)["limit"][0]) for p in server.requests]


def test_a_page_too_large_is_asked_again_smaller(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.answer = large_pages
    code = cli("runs", "--server", hostile.url, "--limit", "1000", "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)["items"]] == [run(i)["id"] for i in range(RUNS)]
    # Halved until a page fits, then pages of that size (the last one what is left).
    assert limits(hostile)[:5] == [1000, 500, 250, 125, 62]
    assert set(limits(hostile)[4:]) == {62}


def test_a_single_run_too_large_is_an_error(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(client.MAX_ANSWER_BYTES + 1))
        h.end_headers()

    hostile.answer = refused
    code = cli("runs", "--server", hostile.url, "--limit", "4")
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, f"{hostile.url} answered more than 64 MiB (refused)")
    assert limits(hostile) == [4, 2, 1]
