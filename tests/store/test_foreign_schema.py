"""A database that holds something other than a crontask run store (another application's
``runs`` table or Alembic revision) or a damaged one (``alembic_version`` emptied, or holding
two rows) is refused in one sentence that says so, IncompatibleSchema, for a writer and a
reader alike: not a DuplicateTable traceback, "run store unavailable: table runs already
exists" (which says "try later"), a RuntimeError about "several heads", or "written by a newer
crontask" for a revision no crontask writes. Nothing in the database is changed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from reconciler.store import IncompatibleSchema, RunStore, open_store
from reconciler.store.sql import SqlRunStore, create_engine

NOT_OURS = "is not a crontask run store, or a damaged one"


def _sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url, existing=True)  # a writer's refuses a foreign SQLite file
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _refused(url: str, says: str) -> None:
    for existing in (False, True):  # `crontask run`, then `crontask runs`
        with pytest.raises(IncompatibleSchema) as caught:
            open_store(url, writer=not existing, existing=existing).close()
        message = str(caught.value)
        assert NOT_OURS in message, message
        assert says in message, message
        assert "\n" not in message, message


def test_another_applications_runs_table(sql_url: str) -> None:
    _sql(sql_url, "CREATE TABLE runs (id INTEGER PRIMARY KEY, payload TEXT)")
    _refused(sql_url, "'runs'")
    assert _tables(sql_url) == {"runs"}  # nothing made beside it


def test_another_applications_alembic_revision(sql_url: str) -> None:
    _sql(
        sql_url,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('3f2a1b9c8d7e')",
    )
    _refused(sql_url, "'3f2a1b9c8d7e'")
    assert _tables(sql_url) == {"alembic_version"}


def _store(url: str, open_many: Callable[[str], RunStore]) -> None:
    store = open_many(url)
    assert isinstance(store, SqlRunStore)
    store.close()


def test_two_revisions(sql_url: str, open_many: Callable[[str], RunStore]) -> None:
    _store(sql_url, open_many)
    _sql(sql_url, "INSERT INTO alembic_version VALUES ('0005')")
    _refused(sql_url, "several revisions")


def test_the_revision_emptied(sql_url: str, open_many: Callable[[str], RunStore]) -> None:
    _store(sql_url, open_many)
    _sql(sql_url, "DELETE FROM alembic_version")
    _refused(sql_url, "no schema revision")


def test_a_newer_crontask_is_still_said_so(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    _store(sql_url, open_many)
    _sql(sql_url, "UPDATE alembic_version SET version_num = '0042'")
    _sql(sql_url, "UPDATE crontask_schema_readers SET oldest = '0042'")  # it says it changed
    with pytest.raises(IncompatibleSchema, match="written by a newer crontask"):
        open_store(sql_url, writer=True)
