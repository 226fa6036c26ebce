"""Schema 0007: each member's crontask version, ``members.version``, nullable.

During a rolling update the replicas of the previous release keep running on the upgraded
schema: their renewal writes the columns they know and no ``version``, which must still work,
and their row reads back without a version (shown as unknown), never as an error. An upgrade
from 0006 keeps the member rows there. How the releases before it run on it:
``test_previous_releases.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from reconciler.store import RunStore, migrations
from reconciler.store.sql import SqlRunStore, create_engine

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def _row(member: str) -> dict[str, object]:
    """A members row as crontask 0006 wrote it: every column it knew, no version."""
    return {
        "id": member,
        "address": "10.0.0.1:8080",
        "since": T0,
        "renewed": T0,
        "lease_seconds": 15.0,
        "digest": "d1",
        "revision": None,
        "owned": 2,
        "draining": False,
    }


def _members(conn: sa.Connection) -> sa.Table:
    """The members table as the database describes it (what an older crontask's code sees
    is a subset of it: its own declaration)."""
    return sa.Table("members", sa.MetaData(), autoload_with=conn)


def test_an_upgrade_from_0006_keeps_the_member_rows_without_a_version(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    engine = create_engine(sql_url)
    try:
        with engine.connect() as conn, conn.begin():
            migrations.upgrade(conn, "0006")
            old = _members(conn)
            assert "version" not in old.c
            conn.execute(old.insert(), [_row("a:1:a"), _row("b:1:b")])
    finally:
        engine.dispose()

    store = open_many(sql_url)

    assert isinstance(store, SqlRunStore)
    with store.engine.begin() as conn:
        assert migrations.current_revision(conn) == migrations.HEAD
        rows = conn.execute(sa.text("SELECT id, owned, version FROM members ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("a:1:a", 2, None), ("b:1:b", 2, None)]


def test_the_previous_release_still_writes_its_row_on_the_upgraded_schema(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    """Its INSERT names the 0006 columns only: the new column is nullable, with no default
    it would have to know."""
    store = open_many(sql_url)
    assert isinstance(store, SqlRunStore)
    with store.engine.begin() as conn:
        as_0006 = sa.Table(
            "members",
            sa.MetaData(),
            *(sa.Column(name) for name in _row("x")),
        )
        conn.execute(as_0006.insert().values(_row("old:1:old")))
        conn.execute(_members(conn).insert().values({**_row("new:1:new"), "version": "0.3.0"}))
        rows = conn.execute(sa.text("SELECT id, version FROM members ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("new:1:new", "0.3.0"), ("old:1:old", None)]


def test_a_downgrade_to_0006_and_back_keeps_the_members(sql_url: str) -> None:
    engine = create_engine(sql_url)
    try:
        with engine.connect() as conn, conn.begin():
            migrations.upgrade(conn, "head")
            conn.execute(_members(conn).insert().values({**_row("a:1:a"), "version": "0.3.0"}))
        with engine.connect() as conn, conn.begin():
            migrations.downgrade(conn, "0006")
            assert "version" not in _members(conn).c
            assert migrations.oldest_reader(conn) is None  # the table went with it
            migrations.upgrade(conn, "head")
            rows = conn.execute(sa.text("SELECT id, version FROM members")).all()
        assert [tuple(r) for r in rows] == [("a:1:a", None)]
    finally:
        engine.dispose()
