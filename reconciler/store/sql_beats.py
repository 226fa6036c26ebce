"""The ``instances`` table: each crontask's heartbeat (see ``controller.heartbeat``).

A beat is one upsert of the instance's row. The rows are read back as text: whether one has
lapsed is judged by whoever reads them, on its own clock, by whether a row changes
(``controller.heartbeat``), never by comparing the time in it with another clock.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from reconciler.store.sql_schema import instances


def beat(sqlite: bool, instance: str, lease_seconds: float, now: datetime) -> sa.Executable:
    insert = (sqlite_insert if sqlite else pg_insert)(instances)
    values = {"id": instance, "renewed": now, "lease_seconds": lease_seconds}
    return insert.values(values).on_conflict_do_update(
        index_elements=["id"],
        set_={"renewed": insert.excluded.renewed, "lease_seconds": insert.excluded.lease_seconds},
    )


def beats(conn: Connection) -> dict[str, tuple[str, float]]:
    # As text, compared only with itself: a value any client of the database may write there
    # ('infinity', or text that is no time at all in SQLite) reads as well as any other.
    query = sa.select(
        instances.c.id,
        sa.cast(instances.c.renewed, sa.Text),
        sa.cast(instances.c.lease_seconds, sa.Text),
    )
    return {id_: (mark or "", _seconds(lease)) for id_, mark, lease in conn.execute(query)}


def _seconds(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:
        return float("nan")  # judged as the longest lease (controller.heartbeat)


def forget(asked: Collection[str]) -> sa.Executable:
    return instances.delete().where(instances.c.id.in_(sorted(set(asked))))
