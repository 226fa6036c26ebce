"""``crontask runs`` reads the run store unless told ``--server``: its help says so, not the
client commands' default server, and ``$CRONTASK_SERVER`` does not change which history it
reads (a user who set it for ``tasks`` is told how to ask it when there is no store here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store, sqlite_url
from tests.cli.hostile import crontask

# No server answers there: a `runs` that asked it would fail, not list the store's run.
NOBODY = "http://127.0.0.1:9"


def test_the_help_says_the_store_is_read_without_server() -> None:
    done = crontask("runs", "--help", timeout=60)
    assert done.code == 0, done.err
    said = " ".join(done.out.split())  # as one line: argparse wraps it
    assert "(default: $CRONTASK_SERVER or http://127.0.0.1:8080)" not in said
    assert "without --server the store is read, whatever $CRONTASK_SERVER says" in said


def test_the_server_in_the_environment_does_not_replace_the_store(tmp_path: Path) -> None:
    at = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    record = RunRecord(
        id=run_id("ops/backup", at),
        task="ops/backup",
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
    )
    store = open_store(sqlite_url(tmp_path))
    store.save_many([record])
    store.close()
    argv = ("runs", "--json", "--state-dir", str(tmp_path))
    done = crontask(*argv, timeout=60, env={"CRONTASK_SERVER": NOBODY, "CRONTASK_DB": ""})
    assert done.code == 0, done.err
    assert [item["id"] for item in json.loads(done.out)["items"]] == [record.id]


def test_without_a_store_it_says_how_to_ask_the_server_in_the_environment(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    argv = ("runs", "--state-dir", str(state))
    done = crontask(*argv, timeout=60, env={"CRONTASK_SERVER": NOBODY, "CRONTASK_DB": ""})
    assert done.code == 1, done.err
    assert done.err.startswith(f"crontask: no run store at {state}/runs.db"), done.err
    assert '--server "$CRONTASK_SERVER"' in done.err
    assert not state.exists()
    alone = crontask(*argv, timeout=60, env={"CRONTASK_SERVER": "", "CRONTASK_DB": ""})
    assert "CRONTASK_SERVER" not in alone.err
