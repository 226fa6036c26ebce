"""A real ``crontask run`` whose ``runs.db`` is removed, then restored from a backup with
``cp`` (a new inode), as the error line it logs asks.

The restored file was never taken: crontask logged "records kept for later" on and on,
``/readyz`` said 503, and at the stop it waited its whole grace and lost the records (exit 1).
Now it says ``run store file is back (a different file)``, writes the records that waited
(the runs of the outage, whose claims the backup does not hold), is ready again, and stops at
once with exit status 0. A real process, a real SQLite file, real HTTP."""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.helpers import start_crontask_run, wait_for

pytestmark = pytest.mark.e2e

PATIENCE = 30.0
LISTENING = re.compile(r'msg="api listening" address=127\.0\.0\.1:(\d+) ')
FINISHED = re.compile(r'msg="run finished" task=\S+ run=(\S+) ')
EVERY_SECOND = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: t}
spec:
  schedule: "@every 1s"
  command: {args: ["true"]}
"""


def _finished(text: str) -> list[str]:
    return FINISHED.findall(text)


def _statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT id, status FROM runs").fetchall())


def test_a_backup_restored_under_a_running_crontask_is_taken(tmp_path: Path) -> None:
    proc, log = start_crontask_run(tmp_path, "--listen", "127.0.0.1:0", task=EVERY_SECOND)
    db = tmp_path / "state" / "runs.db"
    saved = tmp_path / "backup.db"
    try:
        found = wait_for("the api listening line", lambda: LISTENING.search(log.read_text()))
        wait_for("a run", lambda: _finished(log.read_text()), PATIENCE)
        # Closed: a connection left open to the old file holds its -wal (not taken meanwhile).
        with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(saved)) as copy:
            source.backup(copy)
        in_backup = _statuses(saved)
        db.unlink()  # as an operator's `rm`: its -wal and -shm are left
        wait_for("the removal told", lambda: "removed or replaced" in log.read_text(), PATIENCE)
        before = len(_finished(log.read_text()))
        wait_for("a run while the file is gone", lambda: len(_finished(log.read_text())) > before)
        during = _finished(log.read_text())[before]
        assert during not in in_backup

        shutil.copyfile(saved, db)  # `cp`: a new inode
        db.chmod(0o600)
        # The -wal left holds the removed file's pages: SQLite would apply them to the backup.
        stale = "runs.db-wal is not empty"
        wait_for("the -wal refused", lambda: stale in log.read_text(), PATIENCE)
        for side in ("-wal", "-shm"):
            db.with_name(db.name + side).unlink()  # as the line says
        wait_for("the file taken", lambda: "run store file is back" in log.read_text(), PATIENCE)
        url = f"http://127.0.0.1:{found.group(1)}"
        ready = wait_for(
            "ready again", lambda: httpx.get(f"{url}/readyz").status_code == 200, PATIENCE
        )
        assert ready
        wait_for("the outage's run written", lambda: during in _statuses(db), PATIENCE)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(PATIENCE)
    text = log.read_text()
    assert code == 0, text
    assert "lost at shutdown" not in text, text
    back = [line for line in text.splitlines() if "run store file is back" in line]
    assert len(back) == 1, text
    assert 'msg="run store file is back (a different file)' in back[0], back
    assert f"path={db}" in back[0], back
    assert _statuses(db)[during] == "succeeded"
