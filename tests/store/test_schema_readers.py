"""A newer crontask's schema that says this crontask may run on it (``crontask_schema_readers``,
see ``reconciler.store.migrations``) is run on as it is: an older replica that restarts during
a rolling update, or a rollback, keeps working. Without the table, with a damaged one, or with
an ``oldest`` after this crontask's revision, it is refused as before."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from reconciler.core.runs import RunStatus
from reconciler.store import IncompatibleSchema, RunStore, migrations, open_store
from reconciler.store.sql import SqlRunStore

from ._records import rec

NEWER = "0999"


def _newer_schema(store: RunStore, *oldest: str) -> None:
    """What a newer crontask's migration that only adds would leave: a nullable column this
    crontask does not know, its revision, and the readers table holding ``oldest`` (one row
    each; none: no table). This crontask's own schema has the table (0007 made it): it is
    made anew here."""
    assert isinstance(store, SqlRunStore)
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {migrations.READERS_TABLE}"))
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN later_note VARCHAR(64)"))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": NEWER})
        if oldest:
            conn.execute(sa.text(f"CREATE TABLE {migrations.READERS_TABLE} (oldest VARCHAR(8))"))
            for value in oldest:
                conn.execute(
                    sa.text(f"INSERT INTO {migrations.READERS_TABLE} (oldest) VALUES (:o)"),  # noqa: S608
                    {"o": value},
                )


def _revision(store: RunStore) -> str | None:
    assert isinstance(store, SqlRunStore)
    with store.engine.connect() as conn:
        return migrations.current_revision(conn)


def test_a_newer_schema_that_allows_this_crontask_is_run_on_as_it_is(
    sql_url: str, open_many: Callable[..., RunStore], caplog: pytest.LogCaptureFixture
) -> None:
    _newer_schema(open_many(sql_url), migrations.HEAD)
    with caplog.at_level(logging.INFO, logger="crontask.store"):
        store = open_many(sql_url)
    assert "run store schema is a newer crontask's" in caplog.text
    record = rec(status=RunStatus.RUNNING)
    store.claim(record)
    store.save_many([rec(status=RunStatus.SUCCEEDED)])  # the same run, ended
    got = store.get(record.id)
    assert got is not None
    assert got.status is RunStatus.SUCCEEDED
    assert _revision(store) == NEWER  # nothing migrated, up or down
    reader = open_many(sql_url, writer=False)
    assert reader.get(record.id) is not None


def test_a_reader_runs_on_it_too(sql_url: str, open_many: Callable[..., RunStore]) -> None:
    _newer_schema(open_many(sql_url), "0001")
    store = open_store(sql_url, existing=True)
    try:
        assert _revision(store) == NEWER
    finally:
        store.close()


@pytest.mark.parametrize(
    ("oldest", "said"),
    [
        ((), "written by a newer crontask$"),
        ((NEWER,), f"a crontask of revision '{NEWER}' or newer may run on it"),
        (("0001", "0002"), "written by a newer crontask$"),  # damaged: two rows
        (("latest",), "written by a newer crontask$"),  # damaged: no revision
    ],
)
def test_otherwise_a_newer_schema_is_refused(
    sql_url: str, open_many: Callable[..., RunStore], oldest: tuple[str, ...], said: str
) -> None:
    _newer_schema(open_many(sql_url), *oldest)
    with pytest.raises(IncompatibleSchema, match=said):
        open_many(sql_url)


@pytest.mark.parametrize(
    "made",
    [
        "CREATE TABLE {t} (since VARCHAR(8))",  # no oldest column
        "CREATE VIEW {t} AS SELECT '0001' AS oldest",  # not a table
    ],
)
def test_a_readers_relation_that_is_no_such_table_is_not_trusted(
    sql_url: str, open_many: Callable[..., RunStore], made: str
) -> None:
    store = open_many(sql_url)
    _newer_schema(store)
    assert isinstance(store, SqlRunStore)
    with store.engine.begin() as conn:
        conn.execute(sa.text(made.format(t=migrations.READERS_TABLE)))
    with pytest.raises(IncompatibleSchema, match=r"written by a newer crontask$"):
        open_many(sql_url)


@pytest.mark.postgres
def test_a_readers_table_further_along_the_search_path_is_not_trusted(
    pg_url: str, pg_admin: Engine, open_many: Callable[..., RunStore]
) -> None:
    _newer_schema(open_many(pg_url))  # none in crontask's own schema
    other = f"other_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{other}"'))
        conn.execute(sa.text(f'CREATE TABLE "{other}".{migrations.READERS_TABLE} (oldest text)'))
        insert = f"INSERT INTO \"{other}\".{migrations.READERS_TABLE} VALUES ('0001')"  # noqa: S608
        conn.execute(sa.text(insert))
    url = make_url(pg_url)
    path = f"{url.query['options']},{other}"  # -csearch_path=<crontask's>,<other>
    further = url.update_query_dict({"options": path}).render_as_string(hide_password=False)
    try:
        with pytest.raises(IncompatibleSchema, match=r"written by a newer crontask$"):
            open_many(further)
    finally:
        with pg_admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{other}" CASCADE'))


def test_a_newer_crontask_that_migrated_while_this_one_waited_is_not_migrated_again(
    sql_url: str, open_many: Callable[..., RunStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    _newer_schema(open_many(sql_url), migrations.HEAD)
    real = migrations.current_revision
    reads: list[str | None] = []

    def before_the_newer_one_committed(conn: sa.Connection) -> str | None:
        # The first read, before the migration lock, saw the schema as it was before the newer
        # crontask's migration committed; the read under the lock sees it done.
        reads.append(real(conn) if reads else "0005")
        return reads[-1]

    monkeypatch.setattr(migrations, "current_revision", before_the_newer_one_committed)
    store = open_many(sql_url)
    assert reads[:2] == ["0005", NEWER]
    assert _revision(store) == NEWER
