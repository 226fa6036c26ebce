"""Schema versioning: upgrades from every released revision, with data, on every SQL back end."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store import IncompatibleSchema, RunQuery, RunStore, migrations
from reconciler.store.sql import SqlRunStore, create_engine, metadata

from ._records import T0, rec


def test_head_constant_is_the_script_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations._HERE))
    assert ScriptDirectory.from_config(cfg).get_heads() == [migrations.HEAD]
    assert migrations.known_revisions() == {
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
    }


def _at_revision(url: str, revision: str) -> sa.Engine:
    engine = create_engine(url)
    with engine.connect() as conn, conn.begin():
        migrations.upgrade(conn, revision)
    return engine


OLD_ROWS: list[RunRecord] = [
    rec(at=0, status=RunStatus.SUCCEEDED, output="ok\n", owner=None),
    rec(at=1, status=RunStatus.FAILED, exit_code=2, reason="NonZeroExit", owner=None),
    rec(at=1, attempt=2, status=RunStatus.RUNNING, trigger=Trigger.RETRY, owner=None),
    rec("web/cleanup", at=0, status=RunStatus.SKIPPED, message="ConcurrencyForbid", owner=None),
]


def test_open_store_migrates_a_0001_database_with_data_to_head(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    engine = _at_revision(sql_url, "0001")
    try:
        with engine.begin() as conn:
            # What crontask at 0001 wrote, through the 0001 table as the database describes it.
            old = sa.Table("runs", sa.MetaData(), autoload_with=conn)
            assert "owner" not in old.c
            conn.execute(
                old.insert(),
                [
                    {
                        **{
                            k: v
                            for k, v in dataclasses.asdict(r).items()
                            if k not in ("owner", "job")
                        },
                        "status": r.status.value,
                        "trigger": r.trigger.value,
                    }
                    for r in OLD_ROWS
                ],
            )
            assert migrations.current_revision(conn) == "0001"
    finally:
        engine.dispose()

    store = open_many(sql_url)

    assert isinstance(store, SqlRunStore)
    with store.engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.HEAD
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("runs")}
    assert {"ix_runs_task_scheduled", "ix_runs_status_scheduled", "ix_runs_scheduled"} <= indexes
    assert "ix_runs_task_scheduled_at" not in indexes
    # the data is intact and reads back exactly (UTC, enums, NULL owner)
    assert store.query(RunQuery()).items == sorted(
        OLD_ROWS, key=lambda r: (r.scheduled_at, r.id, r.attempt), reverse=True
    )
    # and the new column works, next to the old rows
    store.claim(rec(at=5, status=RunStatus.RUNNING, owner="host:1:boot"))
    assert [r.owner for r in store.running()] == [None, "host:1:boot"]
    assert [r.id for r in store.mark_interrupted(["host:1:boot"], T0 + timedelta(hours=1))] == [
        rec(at=5).id
    ]
    # opening again is a no-op
    open_many(sql_url)


def test_an_upgrade_of_a_history_says_when_it_starts_and_how_long_it_took(
    sql_url: str, open_many: Callable[[str], RunStore], caplog: pytest.LogCaptureFixture
) -> None:
    """Building an index over millions of records takes minutes, with nothing started
    meanwhile: the log says why. A new store, created in an instant, says nothing."""
    _at_revision(sql_url, "0004").dispose()
    with caplog.at_level(logging.INFO, logger="crontask.store"):
        open_many(sql_url)
        open_many(sql_url)  # at HEAD now: nothing to say
    said = [(r.getMessage(), r.fields) for r in caplog.records]  # type: ignore[attr-defined]
    assert [message for message, _ in said] == [
        "run store schema upgrading",
        "run store schema upgraded",
    ]
    assert said[0][1] == {"from": "0004", "to": migrations.HEAD}
    assert said[1][1]["seconds"] >= 0


def test_a_new_store_is_created_without_a_word(
    tmp_path: Path, open_many: Callable[[str], RunStore], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="crontask.store"):
        open_many(f"sqlite:///{tmp_path / 'runs.db'}")
    assert caplog.records == []


def test_downgrade_and_upgrade_again_keep_the_data(sql_url: str) -> None:
    engine = _at_revision(sql_url, "head")
    store = SqlRunStore(engine)
    try:
        store.claim(rec(owner="host:1:boot"))
        with engine.connect() as conn, conn.begin():
            migrations.downgrade(conn, "0001")
        with engine.connect() as conn, conn.begin():
            assert migrations.current_revision(conn) == "0001"
            migrations.upgrade(conn)
        assert store.get(rec().id) == rec(owner=None)  # 0001 had nowhere to keep the owner
        with engine.connect() as conn, conn.begin():
            migrations.downgrade(conn, "base")
            assert not sa.inspect(conn).has_table("runs")
    finally:
        store.close()


def test_the_migrated_schema_is_what_the_code_declares(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    """``sql.runs`` (what queries use) and the migrations (what databases get) must agree."""
    store = open_many(sql_url)
    assert isinstance(store, SqlRunStore)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert [d for d in diff if d[0] != "remove_table" or d[1].name != "alembic_version"] == []


def test_a_schema_from_a_newer_crontask_is_refused(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    store = open_many(sql_url)
    assert isinstance(store, SqlRunStore)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
        # A revision an older crontask cannot write through says so (see migrations).
        conn.execute(sa.text("UPDATE crontask_schema_readers SET oldest = '0999'"))
    with pytest.raises(IncompatibleSchema, match="0999"):
        open_many(sql_url)


def test_datetimes_are_stored_as_utc(sql_url: str, open_many: Callable[[str], RunStore]) -> None:
    """Whatever zone the caller used, the database holds UTC (a human reading it sees UTC)."""
    store = open_many(sql_url)
    assert isinstance(store, SqlRunStore)
    at = datetime(2026, 11, 26, 3, 0, tzinfo=UTC).astimezone()
    store.claim(rec(at=at))
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT scheduled_at FROM runs")).scalar_one()
    if isinstance(raw, str):  # SQLite: text, no offset
        assert raw.startswith("2026-11-26 03:00:00")
    else:
        assert raw == datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
