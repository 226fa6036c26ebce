"""The run store's readiness (``SqlRunStore.ping``): whether it can take records now.

- PostgreSQL: a server that answers but takes no writes (a read-only standby,
  ``default_transaction_read_only``), or the ``runs`` table gone or its rights revoked, is an
  outage as the records see it (``sql_errors``), and readiness says so.
- SQLite: the first entry of the runs table and of each of its indexes is read
  (``first_entries``): a page damaged there fails the check. Damage deeper in (say the last
  leaf of an index, where each new record lands) is met by the writes only: the store
  remembers it (``Damage``) and readiness fails with it until a write of records succeeds.
"""

from __future__ import annotations

import threading
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.store.base import StoreUnavailable
from reconciler.store.sql_errors import Damaged
from reconciler.store.sql_schema import runs

# PostgreSQL: whether this session may write the runs (a missing table raises 42P01).
_WRITABLE: Final = sa.text(
    "SELECT current_setting('transaction_read_only') = 'off'"
    " AND has_table_privilege('runs', 'INSERT') AND has_table_privilege('runs', 'UPDATE')"
)
# This schema's partial indexes and their predicates: a partial index is read only by a query
# that holds its predicate.
_PREDICATES: Final = {
    str(i.name): str(i.dialect_options["sqlite"]["where"])
    for i in runs.indexes
    if i.dialect_options["sqlite"]["where"] is not None
}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def first_entries(conn: Connection) -> list[sa.TextClause]:
    """SQLite: a read of the first entry of the runs table, and of each index the file has
    (``PRAGMA index_list``: a newer crontask this one may run beside may have dropped or
    renamed one of this version's; naming them, readiness failed for good with "no such
    index"), each through its own b-tree: its root page and a leaf. A partial index not of
    this schema is left out (its predicate is not known here)."""
    reads = [sa.text("SELECT 1 FROM runs NOT INDEXED LIMIT 1")]  # else read through an index
    for row in conn.exec_driver_sql("PRAGMA index_list(runs)").all():
        name, partial = str(row[1]), bool(row[4])
        if partial and name not in _PREDICATES:
            continue
        held = f" WHERE {_PREDICATES[name]}" if partial else ""
        reads.append(sa.text(f"SELECT 1 FROM runs INDEXED BY {_quoted(name)}{held} LIMIT 1"))  # noqa: S608
    return reads


def check(conn: Connection, *, sqlite: bool) -> None:
    """Raise StoreUnavailable unless the store on ``conn`` can take records (module docs)."""
    if sqlite:
        for read in first_entries(conn):  # a damaged file fails here too
            conn.execute(read).all()
    elif not conn.execute(_WRITABLE).scalar():
        # A session begun read-only stays so: not kept for the next ping (sql_errors).
        conn.invalidate()
        raise StoreUnavailable("the run store takes no writes (read-only, or no rights)")


class Damage:
    """The damage a store's work last met in its SQLite file (``sql_errors.Damaged``), said
    by readiness until a write of records (a claim, a save) goes through: the first entries
    it reads may be whole while each new record fails, and the log said "damaged" every
    second while readiness stayed green. A write of records that succeeds (the file repaired
    in place, say by a REINDEX) clears it; other writes (a beat, a prune) may not touch the
    damaged pages, so they do not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._met: Damaged | None = None

    def met(self, error: Damaged) -> None:
        with self._lock:
            self._met = error

    def written(self) -> None:
        with self._lock:
            self._met = None

    def check(self) -> None:
        with self._lock:
            met = self._met
        if met is not None:
            raise Damaged(str(met)) from met.__cause__
