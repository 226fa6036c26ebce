"""Which tasks the replicas' views differ on is read from one snapshot of the views: a view
published between the read of the keys that differ and the read of their views (another
replica's pass, its view sent again after a lapse) must not make the answer a mix of both
states, such as a key "differing" whose views are all the same."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.store import open_store
from reconciler.store.members import SqlViews
from reconciler.store.sql_schema import create_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    open_store(pg_url).close()
    engine = create_engine(pg_url)
    yield engine
    engine.dispose()


def test_a_view_published_between_the_two_reads_is_not_mixed_in(
    pg_url: str, engine: sa.Engine
) -> None:
    views = SqlViews(engine)
    views.publish("a", {"ns/x": "h1", "ns/y": "h2"})
    views.publish("b", {"ns/x": "h1"})  # b has not read ns/y yet
    before = [("ns/y", {"a": "h2", "b": None})]
    assert views.differing(["a", "b"]) == before
    # b publishes ns/y, committed by another connection right after the first of differing's
    # reads (the keys that differ) was answered, before the second (their views).
    other = SqlViews(create_engine(pg_url))
    selects: list[str] = []

    def publish_after_first_select(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "member_views" in statement:
            selects.append(statement)
            if len(selects) == 1:
                other.publish("b", {"ns/y": "h2"})

    sa.event.listen(engine, "after_cursor_execute", publish_after_first_select)
    try:
        found = views.differing(["a", "b"])
    finally:
        sa.event.remove(engine, "after_cursor_execute", publish_after_first_select)
        other.engine.dispose()
    assert len(selects) == 2  # the publish did come between the two reads
    # As of the first read's snapshot: b had not declared ns/y. (Read committed gave
    # [("ns/y", {"a": "h2", "b": "h2"})]: a difference with none.)
    assert found == before
    assert views.differing(["a", "b"]) == []  # and now, as published
