"""A reader (``crontask runs``) changes nothing in the store it reads, its schema included.

It upgraded an older store: the migration's lock under a running crontask, and that older
crontask then refused to start on a store "written by a newer crontask". A reader now says,
in one line, that the store is older, and leaves it as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.store import IncompatibleSchema, StoreUnavailable, migrations, open_store
from reconciler.store.sql import create_engine

OLDER = "0005"


def _revision(url: str) -> str | None:
    engine = create_engine(url, existing=url.startswith("sqlite"))
    try:
        with engine.connect() as conn, conn.begin():
            return migrations.current_revision(conn)
    finally:
        engine.dispose()


def _older_store(url: str) -> None:
    """A store as the crontask before this one left it."""
    open_store(url, writer=True).close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            migrations.downgrade(conn, OLDER)
    finally:
        engine.dispose()


def test_a_reader_leaves_an_older_schema_as_it_is(sql_url: str) -> None:
    _older_store(sql_url)
    with pytest.raises(IncompatibleSchema, match=f"'{OLDER}', older than"):
        open_store(sql_url, existing=True)
    assert _revision(sql_url) == OLDER
    open_store(sql_url, writer=True).close()  # crontask run upgrades it, as before
    assert _revision(sql_url) == migrations.HEAD
    open_store(sql_url, existing=True).close()


def test_crontask_runs_on_an_older_store_says_so_in_one_line(sql_url: str, tmp_path: Path) -> None:
    _older_store(sql_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONTASK_")}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "runs", "--db", sql_url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("crontask: "), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "older than" in done.stderr
    assert _revision(sql_url) == OLDER


@pytest.mark.postgres
def test_a_reader_creates_nothing_in_a_database_no_crontask_used(pg_url: str) -> None:
    with pytest.raises(StoreUnavailable, match="no run store"):
        open_store(pg_url, existing=True)
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        engine.dispose()
