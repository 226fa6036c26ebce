"""The ``instances`` table: each crontask's heartbeat (see ``controller.heartbeat``).

A beat is one upsert of the instance's row; whether a row has lapsed is judged in Python
(``base.lapsed_at``) on the few rows asked about, so no interval arithmetic differs between
SQLite and PostgreSQL, and a row written with a lease that is no number (any client of the
database may write one) is read with the longest lease instead of failing the read.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from reconciler.store.base import lapsed_at
from reconciler.store.sql_schema import instances

# Ids asked about in one statement: a sweep asks about the owners of the running records.
_CHUNK = 500


def beat(sqlite: bool, instance: str, lease_seconds: float, now: datetime) -> sa.Executable:
    insert = (sqlite_insert if sqlite else pg_insert)(instances)
    values = {"id": instance, "renewed": now, "lease_seconds": lease_seconds}
    return insert.values(values).on_conflict_do_update(
        index_elements=["id"],
        set_={"renewed": insert.excluded.renewed, "lease_seconds": insert.excluded.lease_seconds},
    )


def lapsed(conn: Connection, now: datetime, asked: Collection[str] | None) -> set[str]:
    columns = sa.select(instances.c.id, instances.c.renewed, instances.c.lease_seconds)
    if asked is None:
        rows = list(conn.execute(columns))
    else:
        ids = sorted(set(asked))
        rows = []
        for at in range(0, len(ids), _CHUNK):
            chunk = ids[at : at + _CHUNK]
            rows += conn.execute(columns.where(instances.c.id.in_(chunk)))
    return {row.id for row in rows if lapsed_at(row.renewed, row.lease_seconds, now)}


def forget(asked: Collection[str]) -> sa.Executable:
    return instances.delete().where(instances.c.id.in_(sorted(set(asked))))
