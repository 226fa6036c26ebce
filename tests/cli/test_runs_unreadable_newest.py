"""``crontask runs`` (the table, read from the store) when the newest records are ones this
version cannot read: a status a newer crontask sharing the store writes during a rolling
update. The store leaves them out of its pages, so the first page of ``--limit 5`` came back
empty, with a cursor, and the table said "no runs recorded" where ``--json`` listed 5 runs.
The walk past such rows takes whole pages, not one query per ``--limit`` rows.
On a real SQLite store, through a real ``crontask`` process (the query count in this one)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store, sqlite_url
from reconciler.store.query import RunPage, RunQuery
from reconciler.store.sql import SqlRunStore
from tests.cli.hostile import cli
from tests.helpers import crontask_cli

OLD = "default/old"
AT = datetime(2026, 12, 1, tzinfo=UTC)


def _state(tmp_path: Path, readable: int, unreadable: int) -> Path:
    """A store with ``readable`` runs of ``OLD`` a minute apart, then ``unreadable`` newer
    rows of ``default/new`` whose status this version does not know."""
    state = tmp_path / "state"
    store = open_store(sqlite_url(state), writer=True)
    try:
        store.save_many(
            [
                RunRecord(
                    id=run_id(OLD, AT + timedelta(minutes=i)),
                    task=OLD,
                    scheduled_at=AT + timedelta(minutes=i),
                    trigger=Trigger.SCHEDULE,
                    status=RunStatus.SUCCEEDED,
                    exit_code=0,
                )
                for i in range(readable)
            ]
        )
    finally:
        store.close()
    newer = datetime(2026, 12, 7)
    with sqlite3.connect(state / "runs.db") as db:
        db.executemany(
            "insert into runs (id, attempt, task, scheduled_at, trigger, status, output)"
            " values (?, 1, 'default/new', ?, 'schedule', 'pending', '')",
            [
                (
                    f"default.new.{i:06d}",
                    (newer + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                )
                for i in range(unreadable)
            ],
        )
    return state


def _newest_old(n: int, total: int) -> list[str]:
    return [run_id(OLD, AT + timedelta(minutes=i)) for i in range(total - 1, total - 1 - n, -1)]


def test_the_table_lists_the_runs_past_unreadable_newest_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state(tmp_path, readable=50, unreadable=25)
    table = crontask_cli("runs", "--state-dir", str(state), "--limit", "5")
    assert table.returncode == 0, table.stderr
    assert "no runs" not in table.stdout
    rows = table.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == _newest_old(5, 50)
    # The same runs as --json lists (in this process: the table's is the real program's).
    assert cli("runs", "--state-dir", str(state), "--limit", "5", "--json") == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["items"]] == _newest_old(5, 50)


def test_only_unreadable_runs_is_nothing_recorded(tmp_path: Path) -> None:
    state = _state(tmp_path, readable=0, unreadable=12)
    table = crontask_cli("runs", "--state-dir", str(state), "--limit", "5")
    assert table.returncode == 0, table.stderr
    assert table.stdout == "no runs recorded\n"


def test_many_unreadable_rows_take_whole_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state(tmp_path, readable=10, unreadable=2500)
    limits: list[int] = []
    query = SqlRunStore.query

    def counted(self: SqlRunStore, q: RunQuery) -> RunPage:
        limits.append(q.limit)
        return query(self, q)

    monkeypatch.setattr(SqlRunStore, "query", counted)
    code = cli("runs", "--state-dir", str(state), "--limit", "5", "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)["items"]] == _newest_old(5, 10)
    # --limit 5 first, then whole pages past the 2,500 rows left out: not 500 queries of 5.
    assert limits == [5, 1000, 1000, 1000]
