"""The run store: the queryable history of every run, and the arbiter of who runs a slot.

The seam is :class:`RunStore` (``base.py``, whose docstrings are the contract; the query and
page types it takes are in ``query.py``). Implementations:

- :class:`MemoryRunStore` (``memory.py``): process-local; a real implementation for tests.
- :class:`SqlRunStore` (``sql.py``): SQLite (default, one file in the state directory) and
  PostgreSQL (several replicas sharing one history), schema versioned with Alembic
  (``migrations/``) and upgraded automatically when opened; the table and the engine set-up
  (SQLite pragmas, timeouts, error translation) are in ``sql_schema.py``, a record as a row in
  ``sql_rows.py`` and the SELECT of a query's page in ``sql_pages.py``.

Pick one by URL with :func:`open_store`. This is the only package allowed to import SQLAlchemy;
everything else sees the Protocol, the dataclasses and the errors re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.store.base import DuplicateRun, IncompatibleSchema, RunStore, StoreUnavailable
from reconciler.store.memory import MemoryRunStore
from reconciler.store.query import RunPage, RunQuery

__all__ = [
    "DuplicateRun",
    "IncompatibleSchema",
    "MemoryRunStore",
    "RunPage",
    "RunQuery",
    "RunStore",
    "StoreUnavailable",
    "open_store",
    "sqlite_url",
]

MEMORY_URL = "memory://"
DB_FILENAME = "runs.db"


def sqlite_url(state_dir: Path) -> str:
    """The URL of the default store: ``state_dir/runs.db`` (absolute, so cwd does not matter)."""
    # Absolute, not resolved: a link in place of the file is refused, never followed.
    return f"sqlite:///{(state_dir / DB_FILENAME).absolute()}"


def open_store(url: str, *, writer: bool = False, existing: bool = False) -> RunStore:
    """Open the store at ``url``, creating and migrating it to the current schema as needed.
    ``writer``: the caller will claim and save runs (see ``SqlRunStore.open``). ``existing``:
    open a SQLite file only if it is there, and create or change nothing (a reader, who may
    be reading another user's store): a schema older than this code's is IncompatibleSchema,
    not upgraded; without it a SQLite file and its folder are made
    private, or refused, as ``reconciler.statedir`` says.

    ``memory://`` -> a fresh :class:`MemoryRunStore`; ``sqlite:///PATH`` and
    ``postgresql+psycopg://USER:PASS@HOST:PORT/DB`` -> a :class:`SqlRunStore`. Raises
    :class:`StoreUnavailable` if the database cannot be reached, :class:`IncompatibleSchema` if
    a newer crontask migrated it (or an older one, for a reader), ``ValueError`` for an
    unsupported URL, ``statedir.Refused`` or OSError for a SQLite file or folder that cannot be
    used.
    """
    if url == MEMORY_URL:
        return MemoryRunStore()
    # Imported here so that importing the seam (e.g. for the types) does not load SQLAlchemy.
    from reconciler.store.sql import SqlRunStore

    return SqlRunStore.open(url, writer=writer, existing=existing)
