"""One task's records of a few kinds, newest first, each kind read by its own query
(``RunStore.query``'s status and trigger filters), so that the store leaves out the rest:
what the notifier reads back of a task past a hung run's skipped slots
(``controller.wiring``), thousands of them under a schedule of every second, without
fetching one of them."""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator, Sequence
from datetime import datetime

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store.base import RunQuery, RunStore
from reconciler.store.query import Cursor

__all__ = ["newest_first"]


def newest_first(
    store: RunStore,
    task: str,
    kinds: Sequence[tuple[RunStatus, Trigger | None]],
    *,
    after: RunRecord | None = None,
    page: int = 100,
) -> Iterator[RunRecord]:
    """``task``'s records whose (status, trigger) is one of ``kinds`` (``None``: any trigger),
    older than ``after`` if given, newest first (the stores' order), without their output.
    Lazy: a kind's next page is read when the merge reaches its end, and the caller stops
    when it has read enough (each kind costs one query before the first record)."""
    cursor = None if after is None else Cursor.after(after).encode()
    streams = [
        _pages(
            store,
            RunQuery(
                task=task, status=status, trigger=trigger, limit=page, output=False, cursor=cursor
            ),
        )
        for status, trigger in kinds
    ]
    return heapq.merge(*streams, key=_newest_first, reverse=True)


def _pages(store: RunStore, q: RunQuery) -> Iterator[RunRecord]:
    while True:
        found = store.query(q)
        yield from found.items
        if found.next_cursor is None:
            return
        q = dataclasses.replace(q, cursor=found.next_cursor)


def _newest_first(record: RunRecord) -> tuple[datetime, str, int]:
    return (record.scheduled_at, record.id, record.attempt)
