"""How the SQL store writes and forgets the marks of ``RunStore.mark_tracked``: off the hot
path, so a mark waits for a lock another holds as long as the database lets it (not the 2 s of
a run's write: a VACUUM or a long prune made it fail, and the next start caught up a slot
missed while the task was not declared), and in transactions of bounded size, so that a claim
from another connection waits for a few thousand rows, not for all the tasks of a first start."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler.store import RunStore, sql_tracked
from reconciler.store.sql import SqlRunStore

from ._records import T0

MINUTE = timedelta(minutes=1)


def _sql(store: RunStore) -> SqlRunStore:
    assert isinstance(store, SqlRunStore)
    return store


class _RowsPerWrite:
    """The rows each committed transaction of ``engine`` wrote to ``tracked`` (inserted or
    deleted; transactions that wrote none are left out)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.committed: list[int] = []
        self._open: dict[int, int] = {}

    def __enter__(self) -> _RowsPerWrite:
        sa.event.listen(self.engine, "after_cursor_execute", self._executed)
        sa.event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "after_cursor_execute", self._executed)
        sa.event.remove(self.engine, "commit", self._commit)

    def _executed(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        text = statement.lstrip().upper()
        if "TRACKED" not in text or not text.startswith(("INSERT", "DELETE")):
            return
        rows = len(params) if many else max(cursor.rowcount, 0)
        self._open[id(conn)] = self._open.get(id(conn), 0) + rows

    def _commit(self, conn: Any) -> None:
        rows = self._open.pop(id(conn), 0)
        if rows:
            self.committed.append(rows)


def test_many_marks_are_written_in_bounded_transactions(
    sql_url: str, open_many: Callable[..., RunStore]
) -> None:
    store = _sql(open_many(sql_url))
    since = {f"ops/t{n:05}": T0 + n * MINUTE for n in range(5_000)}

    with _RowsPerWrite(store.engine) as writes:
        store.mark_tracked(since)

    assert sum(writes.committed) == 5_000
    assert max(writes.committed) <= sql_tracked.ROWS_PER_WRITE < 5_000
    assert store.last_slots() == since


def test_aged_marks_are_forgotten_in_bounded_transactions(
    sql_url: str, open_many: Callable[..., RunStore]
) -> None:
    store = _sql(open_many(sql_url))
    now = T0 + timedelta(days=40)
    gone = {f"ops/gone{n:05}": T0 for n in range(5_000)}
    store.mark_tracked({**gone, "ops/kept": T0, "ops/recent": now - MINUTE})

    with _RowsPerWrite(store.engine) as writes:
        store.prune({}, timedelta(days=30), now, declared={"ops/kept"})

    assert sum(writes.committed) == 5_000
    assert max(writes.committed) <= sql_tracked.ROWS_PER_WRITE
    assert store.last_slots() == {"ops/kept": T0, "ops/recent": now - MINUTE}
