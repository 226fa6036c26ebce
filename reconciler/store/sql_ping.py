"""The run store's readiness (``SqlRunStore.ping``): whether it can take records now.

- PostgreSQL: a server that answers but takes no writes (a read-only standby,
  ``default_transaction_read_only``), or the ``runs`` table gone or its rights revoked, is an
  outage as the records see it (``sql_errors``), and readiness says so.
- SQLite: the first entry of the runs table and of each of its indexes is read
  (``first_entries``): a page damaged there fails the check. Damage deeper in (say the last
  leaf of an index, where each new record lands) is met by the work that reaches it: its
  records wait, as in an outage, and the log and the API's ``503`` say the file is damaged;
  readiness, which reads no such page, does not (it would be green or red by which task
  last wrote: no probe could act on that).
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.store.base import StoreUnavailable
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


_NOT_READABLE: Final = ("no query solution", "no such index")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def first_entries(conn: Connection) -> list[str]:
    """SQLite: a read of the first entry of the runs table, and of each index the file has
    (``PRAGMA index_list``: a newer crontask this one may run beside may have dropped or
    renamed one of this version's; naming them, readiness failed for good with "no such
    index"), each through its own b-tree: its root page and a leaf. A partial index not of
    this schema is left out (its predicate is not known here). Sent to the driver as they are:
    an index name is the file's to choose (``:y`` in one is no parameter)."""
    reads = ["SELECT 1 FROM runs NOT INDEXED LIMIT 1"]  # else read through an index
    for row in conn.exec_driver_sql("PRAGMA index_list(runs)").all():
        name, partial = str(row[1]), bool(row[4])
        if partial and name not in _PREDICATES:
            continue
        held = f" WHERE {_PREDICATES[name]}" if partial else ""
        reads.append(f"SELECT 1 FROM runs INDEXED BY {_quoted(name)}{held} LIMIT 1")  # noqa: S608
    return reads


def check(conn: Connection, *, sqlite: bool) -> None:
    """Raise StoreUnavailable unless the store on ``conn`` can take records (module docs)."""
    if sqlite:
        for read in first_entries(conn):  # a damaged file fails here too
            try:
                conn.exec_driver_sql(read).all()
            except sa.exc.OperationalError as e:
                # An index this version cannot read so (a newer schema's partial index of the
                # same name, say): not this store's damage, and not ours to judge.
                if not any(why in str(e.orig) for why in _NOT_READABLE):
                    raise
    elif not conn.execute(_WRITABLE).scalar():
        # A session begun read-only stays so: not kept for the next ping (sql_errors).
        conn.invalidate()
        raise StoreUnavailable("the run store takes no writes (read-only, or no rights)")
