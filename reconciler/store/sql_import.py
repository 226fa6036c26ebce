"""Bulk import into the SQL store: many rows, one executemany and one transaction per batch.

Kept apart from ``sql`` because it is no part of the ``RunStore`` contract: it is for imports and
benchmarks (``bench/store_bench.py``), never for claiming. A claim learns of each key whether it
was taken; here a duplicate fails its whole batch, which is what makes a million rows fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection

from reconciler.store.base import DuplicateRun
from reconciler.store.sql_errors import is_unique_violation
from reconciler.store.sql_schema import runs


def insert_many(
    transaction: Callable[[], AbstractContextManager[Connection]],
    rows: Iterable[dict[str, Any]],
    batch_size: int,
) -> int:
    """Insert ``rows`` in batches of ``batch_size``, each in a transaction from
    ``transaction()``; return how many went in. A duplicate raises :class:`DuplicateRun` for its
    whole batch (which is rolled back), without saying which row it was."""
    total = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            total += _insert_batch(transaction, batch)
            batch = []
    if batch:
        total += _insert_batch(transaction, batch)
    return total


def _insert_batch(
    transaction: Callable[[], AbstractContextManager[Connection]],
    rows: Sequence[dict[str, Any]],
) -> int:
    try:
        with transaction() as conn:
            conn.execute(runs.insert(), list(rows))
    except exc.IntegrityError as e:
        if is_unique_violation(e):
            raise DuplicateRun("<batch>", 0) from e
        raise
    return len(rows)
