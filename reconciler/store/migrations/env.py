"""Alembic environment for the run store: online mode only, on the caller's connection.

Run through :func:`reconciler.store.migrations.upgrade`; there is no engine or URL here because
the caller already holds the connection, its transaction and (for concurrent opens) its lock.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "the run store migrations run programmatically: use reconciler.store.open_store(url)"
    )
if context.is_offline_mode():
    raise RuntimeError("offline (--sql) mode is not supported for the run store")

context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():  # a no-op inside the caller's transaction, which is the point
    context.run_migrations()
