"""``crontask runs`` on a SQLite run store whose record holds a value of a type its column does
not (SQLite takes any value in any column: a store edited by hand, or by a hostile process):

- a ``scheduled_at`` that is an integer made SQLAlchemy's date reader raise a TypeError, which
  was said as "--db: an option of the URL is not of a type the driver takes", exit status 2,
  when no --db was given. Only what goes wrong as the store is opened is about the URL; a
  record crontask cannot read is said as such, exit status 1.
- a ``message`` that is a BLOB is read as bytes, which ``--json`` could not encode: a
  traceback. It is shown as text, its bytes that are no UTF-8 escaped (``\\xff``).
On a real SQLite store, through a real ``crontask`` process."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store, sqlite_url
from tests.cli.hostile import crontask

AT = datetime(2026, 12, 3, 1, tzinfo=UTC)
KEY = "default/odd"


def _store(tmp_path: Path, edit: str) -> Path:
    """A state directory whose store holds one run of ``KEY``, then edited by ``edit`` (SQL)."""
    state = tmp_path / "state"
    store = open_store(sqlite_url(state), writer=True)
    try:
        record = RunRecord(
            id=run_id(KEY, AT),
            task=KEY,
            scheduled_at=AT,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.FAILED,
            started_at=AT,
            finished_at=AT + timedelta(seconds=2),
            exit_code=3,
            message="exited with status 3",
            output="out\n",
        )
        store.save_many([record])
    finally:
        store.close()
    with sqlite3.connect(state / "runs.db") as db:
        db.execute(edit)
    return state


@pytest.mark.parametrize("value", ["12345", "x'00ff'", "1.5"])
def test_a_date_of_another_type_is_a_record_that_cannot_be_read(tmp_path: Path, value: str) -> None:
    state = _store(tmp_path, f"update runs set scheduled_at = {value}")  # noqa: S608 - test SQL
    done = crontask("runs", "--state-dir", str(state), timeout=60)
    assert "Traceback" not in done.err, done.err
    assert "option of the URL" not in done.err
    assert "--db" not in done.err
    assert done.code == 1, done.err
    assert done.err.startswith("crontask: run store in the state directory holds a run record")
    assert done.err.count("\n") == 1, done.err


@pytest.mark.parametrize(("blob", "said"), [("x'1b5b324a'", "\x1b[2J"), ("x'6fff6b'", "o\\xffk")])
@pytest.mark.parametrize("argv", [("--json",), ("--id", run_id(KEY, AT), "--json")])
def test_a_blob_message_is_shown_as_text(
    tmp_path: Path, blob: str, said: str, argv: tuple[str, ...]
) -> None:
    edit = f"update runs set message = {blob}, output = {blob}"  # noqa: S608 - test SQL
    state = _store(tmp_path, edit)
    done = crontask("runs", "--state-dir", str(state), *argv, timeout=60)
    assert "Traceback" not in done.err, done.err
    assert done.code == 0, done.err
    [item] = json.loads(done.out)["items"]
    assert item["message"] == said
    if "--id" in argv:
        assert item["output"] == said


def test_a_blob_message_is_escaped_in_the_terminal(tmp_path: Path) -> None:
    state = _store(tmp_path, "update runs set message = x'1b5b324a6fff6b'")
    done = crontask("runs", "--state-dir", str(state), "--id", run_id(KEY, AT), timeout=60)
    assert "Traceback" not in done.err, done.err
    assert done.code == 0, done.err
    assert "\x1b" not in done.out
    assert "message:   \\x1b[2Jo\\xffk" in done.out, done.out
