"""``crontask run`` on a SQLite store another process locks against readers too (``PRAGMA
locking_mode=EXCLUSIVE``; an ordinary write lock holds no reader in WAL mode) cannot read the
store's schema, so it cannot start: it waited the whole busy timeout (30 s) in silence, then
failed with "database is locked". Now a line says what it waits for within seconds, and it
starts as soon as the lock goes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from reconciler.store.sql import SqlRunStore
from tests.helpers import start_crontask_run, wait_for

HOLDER = """\
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()
conn.close()
"""


def test_the_wait_is_said_and_the_start_goes_on_once_the_lock_goes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = state / "runs.db"
    SqlRunStore.open(f"sqlite:///{db}").close()
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        try:
            assert holder.stdout.readline() == "held\n"
            process, log = start_crontask_run(tmp_path, "--listen", "off")
            try:
                wait_for(
                    "the wait said",
                    lambda: "run store locked by another process, readers too" in log.read_text(),
                    timeout=15,  # well before the 30 s the busy timeout lets it wait
                )
                assert "crontask started" not in log.read_text()
                holder.stdin.write("\n")
                holder.stdin.flush()
                assert holder.wait(timeout=10) == 0
                wait_for("the start", lambda: "crontask started" in log.read_text())
            finally:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
        finally:
            holder.kill()
    assert "Traceback" not in log.read_text()
