"""A SQLite run store damaged once crontask runs ("database disk image is malformed") is an
outage, as a store that is down is: the records wait (they were dropped after three tries,
each logged with a traceback), readiness fails (its ``SELECT 1`` read no page of the file), the
API answers 503 (it answered 500), and the log says the file is damaged, without a traceback.
Found damaged as it opens, the file is still refused (the command line names it)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import exc

from reconciler.controller.outage_log import FULL, STILL_FULL
from reconciler.core.runs import RunStatus
from reconciler.store import StoreUnavailable
from reconciler.store.sql import SqlRunStore
from tests.e2e.conftest import START_WAIT
from tests.helpers import free_port, start_crontask_run, wait_for
from tests.store._records import rec

DAMAGED = "its SQLite file is damaged (database disk image is malformed)"
RESTORE = "remove runs.db and its -wal/-shm, then copy a backup in"
EVERY_SECOND = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: t}
spec:
  schedule: "* * * * * *"
  concurrencyPolicy: Allow
  command: {args: ["true"]}
"""


def root_pages(conn: sqlite3.Connection, names: list[str]) -> list[int]:
    rows = conn.execute("SELECT name, rootpage FROM sqlite_master WHERE tbl_name = 'runs'")
    found = dict(rows.fetchall())
    return [found[name] for name in names]


def overwrite(db: Path, pages: list[int], page_size: int) -> None:
    with db.open("r+b") as f:
        for page in pages:
            f.seek((page - 1) * page_size)
            f.write(b"\xde\xad\xbe\xef" * (page_size // 4))


@pytest.mark.parametrize(
    "damaged", [["runs"], ["sqlite_autoindex_runs_1"], ["ix_runs_task_scheduled"]]
)
def test_a_damaged_file_is_an_outage_once_open(tmp_path: Path, damaged: list[str]) -> None:
    db = tmp_path / "runs.db"
    url = f"sqlite:///{db}"
    store = SqlRunStore.open(url, writer=True)
    store.claim(rec(at=0, status=RunStatus.RUNNING))
    store.close()  # the last connection: the WAL is written back into the file
    with sqlite3.connect(db) as conn:
        pages = root_pages(conn, damaged)
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    overwrite(db, pages, page_size)

    store = SqlRunStore.open(url, writer=True)  # reads alembic_version, not the runs
    try:
        with pytest.raises(StoreUnavailable, match=re.escape(DAMAGED)):
            store.ping()  # readiness
        # A claim writes the table and each index: a record that waits, as in an outage. A
        # backup copied over the open file would keep its inode and take the WAL's writes.
        with pytest.raises(StoreUnavailable, match=re.escape(f"{DAMAGED}; {RESTORE}")):
            store.claim(rec(at=1, status=RunStatus.RUNNING))
    finally:
        store.close()


def test_a_file_found_damaged_as_it_opens_is_refused_with_sqlites_words(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    SqlRunStore.open(f"sqlite:///{db}").close()
    overwrite(db, [1], 4096)  # the header and the schema: no database any more
    for existing in (False, True):
        with pytest.raises(exc.DatabaseError, match="file is not a database"):
            SqlRunStore.open(f"sqlite:///{db}", existing=existing)


def damage_under(db: Path, names: list[str]) -> None:
    """Damage the root pages of ``names`` in ``db`` while a crontask writes it: under the write
    lock, with nothing in the WAL (whose newer copies of the pages would be read instead);
    then a write of page 1 makes every other connection drop its cache of the pages."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        pages = root_pages(conn, names)
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]

        def damaged() -> bool:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("BEGIN IMMEDIATE")
            if os.path.getsize(f"{db}-wal") != 0:  # a write came first: again
                conn.execute("ROLLBACK")
                return False
            overwrite(db, pages, page_size)
            conn.execute("PRAGMA user_version = 7")
            conn.execute("COMMIT")
            return True

        wait_for("the runs table damaged", damaged)
    finally:
        conn.close()


def http_get(url: str) -> tuple[int, str]:
    try:
        response = httpx.get(url, timeout=10)
    except httpx.TransportError:  # not listening yet
        return 0, ""
    return response.status_code, response.text


def unready(base: str) -> str | None:
    """The body of /readyz if it answers 503."""
    status, body = http_get(f"{base}/readyz")
    return body if status == 503 else None


def stopped(process: subprocess.Popen[bytes]) -> None:
    """``process`` ended and waited for, whatever failed: one left running would hold its port,
    and its dropped Popen would fail a later test with a ResourceWarning."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_crontask_run_keeps_the_records_and_is_not_ready(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process, log = start_crontask_run(
        tmp_path, "--listen", f"127.0.0.1:{port}", "--insecure-no-auth", task=EVERY_SECOND
    )
    try:
        # Its start's bound too (the first run follows the start by a second).
        wait_for("a run recorded", lambda: "run finished" in log.read_text(), START_WAIT)
        wait_for("ready", lambda: http_get(f"{base}/readyz")[0] == 200)
        damage_under(tmp_path / "state" / "runs.db", ["runs", "sqlite_autoindex_runs_1"])

        wait_for("records kept", lambda: DAMAGED in log.read_text())
        body = wait_for("not ready", lambda: unready(base))
        assert json.loads(body)["checks"]["store"] is False
        assert http_get(f"{base}/api/v1/runs?limit=1")[0] == 503
        wait_for("two records kept", lambda: log.read_text().count(DAMAGED) >= 2)
        process.send_signal(signal.SIGTERM)
        waiting = "waiting for the run store to take the records kept for later"
        wait_for("the shutdown's wait", lambda: waiting in log.read_text())
        process.send_signal(signal.SIGTERM)  # ends that wait
        assert process.wait(timeout=30) == 1  # records lost at shutdown
    finally:
        stopped(process)
    text = log.read_text()
    assert "run record lost at shutdown" in text  # kept until then
    assert FULL not in text  # no record dropped for room
    assert STILL_FULL not in text
    assert "Traceback" not in text, text[-3000:]


def rightmost_leaf(conn: sqlite3.Connection, name: str) -> int:
    """The last leaf page of the b-tree ``name``: where each new entry of a later slot lands."""
    row = conn.execute(
        "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path DESC",
        (name,),
    ).fetchone()
    return int(row[0])


def test_damage_deeper_than_the_first_entries_is_an_outage_for_the_records_that_meet_it(
    tmp_path: Path,
) -> None:
    """The last leaf of an index, where each new record lands: the claim that meets it is an
    outage (the record waits), named damaged; readiness reads no such page and says nothing
    (it would be green or red by which task last wrote). Repaired, the record is written."""
    db = tmp_path / "runs.db"
    url = f"sqlite:///{db}"
    store = SqlRunStore.open(url, writer=True)
    store.insert_many(rec(task=f"ns/t{i % 7}", at=i) for i in range(3000))
    store.close()
    with sqlite3.connect(db) as conn:
        page = rightmost_leaf(conn, "ix_runs_scheduled")
        assert page not in root_pages(conn, ["ix_runs_scheduled"])  # not read by readiness
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with db.open("rb") as f:
        f.seek((page - 1) * page_size)
        whole = f.read(page_size)
    overwrite(db, [page], page_size)

    store = SqlRunStore.open(url, writer=True)
    try:
        store.ping()  # the first entries are whole
        with pytest.raises(StoreUnavailable, match=re.escape(DAMAGED)):
            store.claim(rec(at=5000, status=RunStatus.RUNNING))  # lands on the damaged leaf
        store.ping()  # no page it reads is damaged

        # Repaired in place (the page as it was): the record is written.
        with db.open("r+b") as f:
            f.seek((page - 1) * page_size)
            f.write(whole)
        with sqlite3.connect(db, isolation_level=None) as other:  # the others drop their cache
            other.execute("PRAGMA user_version = 7")
        other.close()
        store.claim(rec(at=5000, status=RunStatus.RUNNING))
        store.ping()
    finally:
        store.close()


def test_readiness_reads_the_indexes_the_file_has(tmp_path: Path) -> None:
    # A newer crontask this one may run beside (its readers' oldest revision) dropped or renamed
    # an index of this version's, and added others: readiness failed for good, "no such index".
    db = tmp_path / "runs.db"
    url = f"sqlite:///{db}"
    store = SqlRunStore.open(url, writer=True)
    store.claim(rec(at=0, status=RunStatus.RUNNING))
    store.close()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP INDEX ix_runs_task_status_finished")
        conn.execute("CREATE INDEX ix_v2 ON runs (task, status, finished_at, id)")
        conn.execute('CREATE INDEX "a ""b" ON runs (task) WHERE status = \'queued\'')
        conn.execute('CREATE INDEX "x :y" ON runs (owner)')  # no bound parameter
        # This version's partial index by name, with a predicate it no longer has.
        conn.execute("DROP INDEX ix_runs_unscheduled")
        conn.execute("CREATE INDEX ix_runs_unscheduled ON runs (task) WHERE attempt > 1")
    conn.close()
    store = SqlRunStore.open(url, writer=True)
    try:
        store.ping()
    finally:
        store.close()

    # And the new index is read too: damage at its first entry fails readiness.
    with sqlite3.connect(db) as conn:
        pages = root_pages(conn, ["ix_v2"])
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    overwrite(db, pages, page_size)
    store = SqlRunStore.open(url, writer=True)
    try:
        with pytest.raises(StoreUnavailable, match=re.escape(DAMAGED)):
            store.ping()
    finally:
        store.close()
