"""What a SQLite file given to a writer holds, looked at before anything is written to it or
made private (``statedir.prepare_db``): another application's database is refused as it was
found. ``--db sqlite:///.../app.db`` naming a file with tables of its own (``orders``) was made
0600 ("run store was readable by others: made private"), given crontask's tables beside
its own, and run on; one with its own ``runs`` table was refused, but only after its mode was
changed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from reconciler.store.base import IncompatibleSchema


def read_only(path: Path) -> Engine:
    """An engine that reads the SQLite file at ``path`` and writes nothing to it (``mode=ro``;
    SQLite still makes a WAL file's -shm beside it)."""
    uri = f"{path.as_uri()}?mode=ro"
    return sa.create_engine(
        f"sqlite:///{path}",
        creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
        poolclass=NullPool,
    )


def refuse_foreign(path: Path) -> None:
    """Raise IncompatibleSchema if the file at ``path`` holds a database that is not a
    crontask run store: tables, none of them crontask's, and no schema revision (another
    application's), or what ``migrations`` refuses before it migrates (a table of crontask's
    name with no revision, a revision no crontask writes). An empty file passes (a new store);
    so does one SQLite cannot read here (no database, a damaged one): the migration names it,
    as before. PostgreSQL is not looked at so: a database there is shared by design (the
    README's "Run history")."""
    # migrations imports sql_schema, which imports this module.
    from reconciler.store import migrations

    if path.stat().st_size == 0:
        return
    engine = read_only(path)
    try:
        with engine.connect() as conn:
            current = migrations.current_revision(conn)
            if current == migrations.HEAD:
                return
            # The refusals ``migrate`` makes on its first look, made here before the privacy
            # step; it makes them again (what is here now may have changed meanwhile).
            migrations.refuse_unknown(conn, current)
            tables = sorted(sa.inspect(conn).get_table_names())
    except exc.DBAPIError:
        return
    finally:
        engine.dispose()
    if current is None and tables:
        listed = ", ".join(repr(name) for name in tables)
        raise IncompatibleSchema(
            f"{path} is not a crontask run store: it holds the table(s) {listed} and none of"
            " crontask's; give crontask a file of its own"
        )
