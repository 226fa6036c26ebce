"""A newer crontask's schema that says this crontask may run on it (``crontask_schema_readers``,
see ``reconciler.store.migrations``) is run on as it is: an older replica that restarts during
a rolling update, or a rollback, keeps working. Without the table, with a damaged one, or with
an ``oldest`` after this crontask's revision, it is refused as before."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from reconciler.core.runs import RunStatus
from reconciler.store import IncompatibleSchema, RunStore, migrations, open_store
from reconciler.store.sql import SqlRunStore

from ._records import rec

NEWER = "0999"


def _newer_schema(store: RunStore, *oldest: str) -> None:
    """What a newer crontask's migration that only adds would leave: a nullable column this
    crontask does not know, its revision, and the readers table holding ``oldest`` (one row
    each; none: no table)."""
    assert isinstance(store, SqlRunStore)
    with store.engine.begin() as conn:
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
