"""A ``crontask run`` refused because another process holds the state directory leaves its
run store as it is: it used to open the store for writing first, which upgraded the schema
under the crontask that runs (and an older one, restarted, then refuses a store "written by a
newer crontask")."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

from reconciler import statedir
from reconciler.store import migrations, open_store, sqlite_url
from reconciler.store.sql import create_engine
from tests.cli.test_state_dir import refused, run

OLDER = "0005"
HOLD = """
import sys
from pathlib import Path
from reconciler import statedir
statedir.lock(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()  # until the test closes it
"""


def revision(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_a_run_refused_by_the_lock_does_not_migrate_the_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    statedir.prepare(state)
    open_store(sqlite_url(state), writer=True).close()
    engine = create_engine(sqlite_url(state))  # the store as the crontask before this one left it
    try:
        with engine.connect() as conn, conn.begin():
            migrations.downgrade(conn, OLDER)
    finally:
        engine.dispose()
    assert revision(state / "runs.db") == OLDER
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:  # its exit (stdin closed) is waited for
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        done = run("state", "--allow-empty", cwd=tmp_path)
    refused(done, 2, "in use by another crontask", f"pid {holder.pid}")
    assert revision(state / "runs.db") == OLDER
