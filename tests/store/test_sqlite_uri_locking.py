"""``--db 'sqlite:///file:PATH?uri=true&...'`` with an option that turns SQLite's locking off
(``nolock``, ``immutable``, a ``vfs`` other than the default ``unix``) is refused to a writer
(``crontask run``) as a usage error, as ``mode=memory`` is: two crontasks sharing such a file
corrupted it within 30 s. A reader (``crontask runs``) may use them: ``immutable=1`` reads a
WAL store on read-only media without making its -shm. The
options are read as SQLite reads them (percent-decoded, from the URL's query or from the
database part), and every spelling accepted here is checked to lock in this SQLite."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from reconciler.store import open_store
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_schema import BEGIN_OPTION, create_engine
from tests.helpers import crontask_cli
from tests.store._records import rec

# (the URL's tail after the file's path, what the refusal names)
REFUSED = [
    ("?uri=true&nolock=1", "nolock=1"),
    ("?uri=true&nolock=yes", "nolock=yes"),
    ("?uri=true&nolock=TRUE", "nolock=TRUE"),
    ("?uri=true&nolock=0x1", "nolock=0x1"),
    ("?uri=true&%256Eolock=1", "nolock=1"),  # SQLite decodes the name once more
    ("%3Fnolock%3D1?uri=true", "nolock=1"),  # in the database part, decoded by SQLAlchemy
    ("%3Fnolock%3D0%26nolock%3D1?uri=true", "nolock=1"),  # any of them (SQLite: the first)
    ("?uri=true&nolock%2500x=1", "nolock=1"),  # %00 ends the name: the rest is skipped
    ("?uri=true&immutable=1", "immutable=1"),
    ("?uri=true&vfs=unix-none", "vfs=unix-none"),
    ("?uri=true&vfs=unix-dotfile", "vfs=unix-dotfile"),
    ("?uri=true&vfs=unix-excl", "vfs=unix-excl"),
]
# Options that leave SQLite's locking on, however they look.
ACCEPTED = [
    "?uri=true",
    "?uri=true&nolock=0",
    "?uri=true&nolock=off",
    "?uri=true&nolock",
    "?uri=true&nolock=extra",  # SQLite takes extra and full for no boolean: its default, off
    "?uri=true&nolocks=1",
    "?uri=true&nolock=0&nolock=1",  # SQLAlchemy hands SQLite nolock=('0', '1'): no boolean
    "?uri=true&vfs=unix&cache=private",
    "?uri=true&x=nolock%3D1",  # a value, not an option
    "?uri=true&no%2500lock=1&immutable=0",  # %00 ends the name: "no"
]


def locked_out(db: Path) -> bool:
    """Whether another process's connection (plain: SQLite's default locking) is refused the
    write lock on ``db`` at once."""
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as err:
        if "database is locked" not in str(err):
            raise
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


@pytest.mark.parametrize(("tail", "named"), REFUSED)
def test_options_that_turn_locking_off_are_refused(tmp_path: Path, tail: str, named: str) -> None:
    db = tmp_path / "db" / "runs.db"
    with pytest.raises(ValueError, match=f"SQLite URI option {named}"):
        open_store(f"sqlite:///file:{db}{tail}", writer=True)
    assert not db.parent.exists()  # refused before anything was made


def test_a_reader_may_read_an_immutable_copy(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SqlRunStore.open(f"sqlite:///{db}", writer=True)
    store.claim(rec(at=0))
    store.close()  # the last connection: the WAL is written back, -wal and -shm removed
    assert not db.with_name("runs.db-shm").exists()
    reader = open_store(f"sqlite:///file:{db}?uri=true&immutable=1", existing=True)
    try:
        assert reader.get(rec(at=0).id) == rec(at=0)
    finally:
        reader.close()
    assert not db.with_name("runs.db-shm").exists()  # as on read-only media


def test_a_repeated_vfs_is_named_once_each(tmp_path: Path) -> None:
    # SQLAlchemy hands SQLite vfs=('unix', 'unix-none'), which the refusal quoted.
    db = tmp_path / "db" / "runs.db"
    with pytest.raises(ValueError, match=re.escape("vfs is given 2 times (unix, unix-none)")):
        open_store(f"sqlite:///file:{db}?uri=true&vfs=unix&vfs=unix-none", writer=True)


@pytest.mark.parametrize("option", ["nolock=1", "vfs=unix-none"])
def test_the_refused_options_do_take_no_lock(tmp_path: Path, option: str) -> None:
    # Why they are refused: a write transaction under them leaves others free to write.
    db = tmp_path / "runs.db"
    sqlite3.connect(db).close()
    assert not locked_out(db)
    conn = sqlite3.connect(f"file:{db}?{option}", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE t (x)")
        assert not locked_out(db)
    finally:
        conn.close()


@pytest.mark.parametrize("tail", ACCEPTED)
def test_the_options_accepted_lock(tmp_path: Path, tail: str) -> None:
    db = tmp_path / "db" / "runs.db"
    url = f"sqlite:///file:{db}{tail}"
    store = open_store(url, writer=True)
    assert isinstance(store, SqlRunStore)
    store.close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                conn.execute(text("DELETE FROM runs"))
                assert locked_out(db)
    finally:
        engine.dispose()


def test_crontask_run_refuses_it_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    url = f"sqlite:///file:{tmp_path}/db/runs.db?uri=true&nolock=1"
    done = crontask_cli("run", "tasks", "--listen", "off", "--db", url, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("crontask: run store sqlite:///file:")
    assert "the SQLite URI option nolock=1 turns SQLite's locking off" in done.stderr
    assert not (tmp_path / "db").exists()


def test_a_memory_mode_in_the_database_part_is_refused(tmp_path: Path) -> None:
    # SQLite reads mode=memory there too: it opened a memory database, the checks on the file.
    db = tmp_path / "db" / "runs.db"
    with pytest.raises(ValueError, match="the SQL run store needs a file"):
        open_store(f"sqlite:///file:{db}%3Fmode%3Dmemory?uri=true", writer=True)
    assert not db.parent.exists()
