"""``crontask runs`` on a PostgreSQL store whose runs table another session has locked (LOCK
TABLE, VACUUM FULL, REINDEX, a newer replica's migration): it waited without limit, saying
nothing. It now gives up after its read's lock wait (10 s), says why and exits 1.

Against the real PostgreSQL server of ``CRONTASK_TEST_POSTGRES_URL`` (skipped without it), with
the real ``crontask`` as a subprocess.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli.test_db_env import crontask, seed
from tests.store.conftest import pg_admin, pg_url

pytestmark = pytest.mark.postgres

__all__ = ["pg_admin", "pg_url"]  # the fixtures, shared with the store suite


@pytest.mark.slow
def test_runs_gives_up_behind_a_lock_on_the_runs_table(pg_url: str, tmp_path: Path) -> None:
    seed(pg_url, "ops/locked")
    other = sa.create_engine(pg_url)
    try:
        with other.connect() as conn:
            conn.execute(sa.text("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE"))
            try:
                # crontask() gives up after 60 s: a reader that waited for ever fails here.
                done = crontask("runs", "--limit", "2", cwd=tmp_path, env={"CRONTASK_DB": pg_url})
            except subprocess.TimeoutExpired:
                pytest.fail("crontask runs still waited for the lock after 60 s")
            finally:
                conn.rollback()
    finally:
        other.dispose()
    assert done.returncode == 1
    assert done.stderr.startswith("crontask: run store unavailable: "), done.stderr
    assert "lock" in done.stderr
    assert "Traceback" not in done.stderr
    # The lock gone, it reads.
    done = crontask("runs", "--limit", "2", cwd=tmp_path, env={"CRONTASK_DB": pg_url})
    assert done.returncode == 0, done.stderr
    assert "ops/locked" in done.stdout
