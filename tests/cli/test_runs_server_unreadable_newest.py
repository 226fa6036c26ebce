"""``crontask runs --server`` past newest records the server cannot read (a newer crontask's,
sharing its store): the server leaves them out of its pages, which come back shorter than
asked, with ``continue``. Asking ``--limit`` rows a page again, past 3 000 such rows ``--limit
5`` took 600 requests (and past 50 000, more than the client's 10 000 pages: an error); after
a short page the client asks pages of the server's size. A real HTTP server that pages as the
API does, counting the requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.cli.history import to_json
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from tests.cli.hostile import Handler, cli, hostile_server

UNREADABLE = 3_000  # the newest rows, left out of every page
SERVER_DEFAULT = 500  # the API's page size when none is asked for
AT = datetime(2026, 12, 1, tzinfo=UTC)
READABLE = [
    to_json(
        RunRecord(
            id=run_id("default/old", AT - timedelta(minutes=i)),
            task="default/old",
            scheduled_at=AT - timedelta(minutes=i),
            trigger=Trigger.SCHEDULE,
            status=RunStatus.SUCCEEDED,
            exit_code=0,
        )
    )
    for i in range(10)
]


def _page(handler: Handler) -> None:
    """Rows ``[at, at + limit)`` of UNREADABLE left-out rows then READABLE, as the API pages."""
    query = parse_qs(urlsplit(handler.path).query)
    at = int(query.get("continue", ["0"])[0])
    size = int(query.get("limit", [str(SERVER_DEFAULT)])[0])
    rows = range(at, min(at + size, UNREADABLE + len(READABLE)))
    items = [READABLE[i - UNREADABLE] for i in rows if i >= UNREADABLE]
    following = str(rows.stop) if rows.stop < UNREADABLE + len(READABLE) else None
    handler.send(200, {"items": items, "metadata": {"continue": following}})


def test_runs_past_rows_the_server_leaves_out_take_pages_of_its_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with hostile_server() as server:
        server.answer = _page
        status = cli("runs", "--server", server.url, "--limit", "5", "--json")
    assert status == 0, capsys.readouterr().err
    listed = json.loads(capsys.readouterr().out)
    assert [run["id"] for run in listed["items"]] == [run["id"] for run in READABLE[:5]]
    # One page of 5, then pages of the server's size, the last with the 5 wanted.
    assert len(server.requests) == 1 + UNREADABLE // SERVER_DEFAULT
