"""Another application's SQLite file given to ``crontask run`` as its store (``--db
sqlite:///.../app.db``, tables of its own and no schema revision) is refused as it was found:
nothing added to it, its mode left as it was (it was made 0600, given crontask's tables, and
run on). A foreign ``runs`` table is refused before the privacy step too. An empty file, or a
new one, is a new store; PostgreSQL databases are shared by design and not looked at so."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.store import IncompatibleSchema, open_store
from reconciler.store.sql import SqlRunStore


def _app_file(path: Path, *statements: str) -> Path:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    path.chmod(0o640)
    return path


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_another_applications_tables_are_refused_as_found(tmp_path: Path) -> None:
    app = _app_file(tmp_path / "app.db", "CREATE TABLE orders (id INTEGER)")
    with pytest.raises(IncompatibleSchema) as caught:
        open_store(f"sqlite:///{app}", writer=True).close()
    message = str(caught.value)
    assert f"{app} is not a crontask run store: it holds the table(s) 'orders'" in message
    assert "\n" not in message
    assert _tables(app) == {"orders"}
    assert _mode(app) == 0o640  # not made private: it is not crontask's


def test_a_foreign_runs_table_is_refused_before_the_privacy_step(tmp_path: Path) -> None:
    app = _app_file(tmp_path / "app.db", "CREATE TABLE runs (id INTEGER PRIMARY KEY)")
    with pytest.raises(IncompatibleSchema, match="is not a crontask run store, or a damaged one"):
        open_store(f"sqlite:///{app}", writer=True).close()
    assert _tables(app) == {"runs"}
    assert _mode(app) == 0o640


def test_an_empty_file_is_a_new_store_made_private(tmp_path: Path) -> None:
    empty = tmp_path / "runs.db"
    empty.touch(mode=0o640)
    empty.chmod(0o640)
    store = open_store(f"sqlite:///{empty}", writer=True)
    store.close()
    assert isinstance(store, SqlRunStore)
    assert "runs" in _tables(empty)
    assert _mode(empty) == 0o600


def test_postgresql_shares_its_database(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE orders (id INTEGER)"))
    finally:
        engine.dispose()
    open_store(pg_url, writer=True).close()
