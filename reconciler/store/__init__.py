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

import os
import urllib.parse
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
    "decoded_by_0_4",
    "keep_marks",
    "open_store",
    "sqlite_url",
]

MEMORY_URL = "memory://"
DB_FILENAME = "runs.db"
# What SQLAlchemy decodes (``%``) or splits at (``?``; ``#`` too, should it ever) in a database
# path, percent-quoted; nothing else is, so that SQLAlchemy's decoding, which reads ``%XX`` as
# UTF-8, gives back a name that is no UTF-8 (surrogate escapes) as it was too.
_URL_SYNTAX = str.maketrans({"%": "%25", "?": "%3F", "#": "%23"})


def sqlite_url(state_dir: Path) -> str:
    """The URL of the default store: ``state_dir/runs.db`` (absolute, so cwd does not matter).

    The characters SQLAlchemy reads in a URL's database part are quoted (``_URL_SYNTAX``):
    put in as they were, ``%41`` in a folder's name named another folder (``pdA``, whose
    crontask then shared the history unnoticed) and a ``?`` began a query string."""
    # Absolute, not resolved: a link in place of the file is refused, never followed.
    path = str((state_dir / DB_FILENAME).absolute())
    return "sqlite:///" + path.translate(_URL_SYNTAX)


def decoded_by_0_4(state_dir: Path) -> Path | None:
    """Where crontask 0.4.0 and older kept ``state_dir``'s store, when that is elsewhere and
    there: its path went into the URL as it was, and SQLAlchemy decoded a ``%XX`` in it
    (``pd%41`` kept ``pdA/runs.db``). Started on an empty store instead, the history would
    look lost and no missed slot would be caught up."""
    ours = (state_dir / DB_FILENAME).absolute()
    theirs = Path(urllib.parse.unquote(str(ours)))
    return theirs if theirs != ours and os.path.lexists(theirs) else None


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


def keep_marks(store: RunStore) -> None:
    """With replicas (``--ha``): from now on ``store.save_many`` leaves a record
    ``mark_interrupted`` ended as marked, unless a stop was asked of it (its end says so,
    ``Replaced``). The others judged this replica gone and took its tasks (their next runs may
    be going): its end coming after their mark is not written over it, whenever it comes, as
    the check is part of the write. Without replicas the end replaces the mark: a crontask
    whose heartbeat lapsed lives on (``controller.heartbeat``). Other stores (a test's
    wrappers) are left as they are."""
    from reconciler.store.sql import SqlRunStore  # imported here, as in open_store

    if isinstance(store, (MemoryRunStore, SqlRunStore)):
        store.keep_marks = True
