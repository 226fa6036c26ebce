"""What the run store's database errors mean: an outage (:class:`StoreUnavailable`: the
records wait and are written once the database is back), a transaction rolled back for
another (:class:`RolledBack`: the same work, tried again, gets a definite answer), or a fault
of the work itself (raised as it is).

- ``translated_errors``: the driver errors meaning "the database is not there, or cannot take
  the store's work, right now" -> StoreUnavailable. For SQLite that includes a full disk, a
  read-only or unwritable file and I/O errors (``OperationalError`` all); for PostgreSQL a
  server that takes no writes, a table gone and privileges revoked too, whatever error class
  psycopg gives them, and a session the server ended for a time limit (``_NOT_NOW_STATES``);
  and a damaged SQLite file once the store is open (``_SQLITE_DAMAGED``).
- The engines' ``handle_error`` listeners (``sqlite_on_error``, ``pg_on_error``): after a
  read-only error the pool's connections are replaced, which would otherwise refuse every
  write for ever once the database is writable again; after a session the server ended
  (``_PG_SESSION_ENDED``), so is that session's connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Final

from sqlalchemy import exc
from sqlalchemy.engine import ExceptionContext

from reconciler.store.base import StoreUnavailable

# SQLite primary result codes after which a pooled connection is not reused (sqlite_on_error).
_SQLITE_REOPEN: Final = frozenset({sqlite3.SQLITE_READONLY})


def sqlite_on_error(context: ExceptionContext) -> None:
    # A connection opened while the file could not be written (read-only mount, immutable or
    # unwritable file) is opened read-only by SQLite, and stays so after the file is writable
    # again: kept in the pool, it would answer SQLITE_READONLY for ever and the store would
    # never come back. Treating the error as a disconnect makes the pool drop its connections;
    # the next call opens fresh ones, which write once the file can be written.
    code = getattr(context.original_exception, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _SQLITE_REOPEN:
        context.is_disconnect = True


# Sessions the server ended for a time limit (FATAL): idle_in_transaction_session_timeout
# (25P03, which the store sets: sql_schema.PG_IDLE_IN_TRANSACTION_TIMEOUT), idle_session_timeout
# (57P05), transaction_timeout (25P04, PostgreSQL 17). Their transaction is rolled back, and the
# connection is dead: psycopg raises 25P03 as an InternalError, not an outage, unless SQLAlchemy
# happened to see the socket closed already. A replica frozen inside a transaction finds this
# once resumed: its write waits and is made again, as in any outage.
_PG_SESSION_ENDED: Final = frozenset({"25P03", "25P04", "57P05"})
# PostgreSQL's read_only_sql_transaction (see pg_on_error), and the sessions ended above.
_PG_REOPEN: Final = frozenset({"25006"}) | _PG_SESSION_ENDED


def pg_on_error(context: ExceptionContext) -> None:
    # A session begun while the database was read-only (default_transaction_read_only, set
    # for the database or the role) keeps that setting when the database is writable again:
    # kept in the pool, it would refuse every write for ever, as SQLite's read-only
    # connections would (sqlite_on_error). Treated as a disconnect, the pool's connections
    # are dropped, and the next ones start with the setting of the moment. A session the
    # server ended (_PG_SESSION_ENDED) is gone: its connection must not be handed out again.
    if getattr(context.original_exception, "sqlstate", None) in _PG_REOPEN:
        context.is_disconnect = True


# PostgreSQL's serialization_failure and deadlock_detected: the server rolled a transaction
# back because another one wanted the same rows. The database is there and the same work,
# tried again, gets a definite answer; psycopg raises these as OperationalError all the same.
_ROLLED_BACK: Final = frozenset({"40001", "40P01"})


class RolledBack(StoreUnavailable):
    """The server rolled the transaction back for another's sake (see above). A caller that
    can run its work again does (``SqlRunStore._write``); to any other, it is a store that
    did not answer this time, as before."""


# PostgreSQL errors that say "this database cannot do the store's work now", whatever class
# psycopg gives them: a server that takes no writes (25006 read_only_sql_transaction: a
# failover left the URL on a standby, default_transaction_read_only), a table dropped or not
# yet restored (42P01 undefined_table), privileges revoked (42501 insufficient_privilege).
# psycopg raises these as InternalError or ProgrammingError, which were not an outage: every
# record written meanwhile was logged with a traceback and thrown away, where in an outage it
# waits and is written once the database is back. An operator fixes each of them without
# crontask's help, so waiting is right. Besides these codes, whole classes: connection
# exceptions (08), insufficient resources (53), the server shutting down or the database
# dropped (57P01-57P04), system errors (58); psycopg raises most of them as OperationalError
# already, listed so that the answer does not hang on its class.
_NOT_NOW_STATES: Final = (
    frozenset({"25006", "42P01", "42501", "57P01", "57P02", "57P03", "57P04"}) | _PG_SESSION_ENDED
)
_NOT_NOW_CLASSES: Final = frozenset({"08", "53", "58"})


def _not_now(e: exc.DBAPIError) -> bool:
    """Whether ``e`` means the database cannot do the work now (see above), not that the work
    is wrong."""
    if isinstance(e, exc.OperationalError | exc.InterfaceError) or e.connection_invalidated:
        return True
    state = getattr(e.orig, "sqlstate", None)
    if not isinstance(state, str):
        return False
    return state in _NOT_NOW_STATES or state[:2] in _NOT_NOW_CLASSES


# SQLite's primary result codes for a damaged file: SQLITE_CORRUPT ("database disk image is
# malformed": a page torn, say by a crash of the disk, or by two processes writing without
# locks) and SQLITE_NOTADB (its header overwritten). sqlite3 raises them as DatabaseError, no
# outage: each record was dropped after three tries, each try logged with a traceback, while
# readiness held. Once crontask runs, they are an outage until someone restores the file
# (crontask cannot): the records that meet it wait, and readiness fails if the pages it reads
# are damaged (``sql_ping``). Found as a store opens, the file is refused instead
# (``translated_errors(damaged=False)``): the command line names it.
_SQLITE_DAMAGED: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def _damaged(e: exc.DBAPIError) -> bool:
    code = getattr(e.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _SQLITE_DAMAGED


# The attribute on a driver's error with the words that say where it happened: SQLite's name
# no file ("database or disk is full"); the engine's SQLite file adds its path (and the room
# left on its file system), ``sql_sqlite_file.SqliteFile._on_error``.
WHERE_NOTE: Final = "crontask_where"


def _said(error: BaseException | None) -> str:
    """What the server said, without the statement PostgreSQL quotes after it ("LINE 1:
    INSERT INTO runs ..." and a caret), which filled each warning of an outage; then where
    (``WHERE_NOTE``)."""
    primary = getattr(getattr(error, "diag", None), "message_primary", None)
    said = primary if isinstance(primary, str) and primary else str(error)
    return said + str(getattr(error, WHERE_NOTE, ""))


@contextlib.contextmanager
def translated_errors(*, damaged: bool = True) -> Iterator[None]:
    """Driver errors that mean "the database is not there right now" (or cannot take the
    store's work now, see ``_NOT_NOW_STATES``) -> StoreUnavailable (:class:`RolledBack` for a
    transaction rolled back to let another go on). ``damaged``: a damaged SQLite file (see
    ``_SQLITE_DAMAGED``) is one too, else its error goes through."""
    try:
        yield
    except exc.DBAPIError as e:
        if getattr(e.orig, "sqlstate", None) in _ROLLED_BACK:
            raise RolledBack(f"run store rolled the transaction back: {e.orig}") from e
        if damaged and _damaged(e):
            raise StoreUnavailable(
                f"run store unavailable: its SQLite file is damaged ({e.orig}); remove"
                " runs.db and its -wal/-shm, then copy a backup in (a running crontask takes"
                " it, and writes the records waiting to it), or stop crontask and move the"
                " file away to start a new history"
            ) from e
        if _not_now(e):
            raise StoreUnavailable(f"run store unavailable: {_said(e.orig)}") from e
        raise
    except exc.TimeoutError as e:  # the pool had no connection to give within its timeout
        raise StoreUnavailable(f"run store unavailable: {e}") from e


def is_unique_violation(e: exc.IntegrityError) -> bool:
    if getattr(e.orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    return "UNIQUE constraint failed" in str(e.orig)  # SQLite (covers PRIMARY KEY too)


# PostgreSQL's lock_not_available: a lock_timeout expired.
_LOCK_TIMED_OUT: Final = "55P03"


@contextlib.contextmanager
def reader_said(read_wait: int | None) -> Iterator[None]:
    """A reader's lock wait (``read_wait`` ms; None: it has none) that ran out said as such:
    PostgreSQL's words ("canceling statement due to lock timeout") do not say whose lock, nor
    what to do."""
    try:
        yield
    except StoreUnavailable as e:
        if read_wait is None or _sqlstate(e.__cause__) != _LOCK_TIMED_OUT:
            raise
        raise StoreUnavailable(
            "run store unavailable: another session holds a lock on crontask's tables"
            " (LOCK TABLE, VACUUM FULL, REINDEX, a schema upgrade?), not released within"
            f" {read_wait / 1000:g} s; try again later"
        ) from e


def _sqlstate(error: BaseException | None) -> object:
    """The SQLSTATE of a SQLAlchemy error's driver error (None if it has none)."""
    return getattr(getattr(error, "orig", None), "sqlstate", None)
