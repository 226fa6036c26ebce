"""The run store's transactions (``sql.SqlRunStore``): one on a pooled connection, its lock
wait set as the caller asks, and on PostgreSQL ended once past its bound (``sql_cut``); and a
write run again when PostgreSQL rolled it back for another's sake."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine

from reconciler.store.base import StoreUnavailable
from reconciler.store.sql_cut import Cutter
from reconciler.store.sql_errors import RolledBack, reader_said, translated_errors
from reconciler.store.sql_schema import BEGIN_OPTION, LOCK_WAIT, WAIT_OPTION

_T = TypeVar("_T")


@contextlib.contextmanager
def transaction(
    engine: Engine,
    *,
    sqlite: bool,
    write: bool,
    ms: int | None,
    read_wait: int | None,
    cutter: Cutter | None = None,
    bound: float | None = None,
) -> Iterator[Connection]:
    """A transaction on ``engine`` that waits ``ms`` for a lock another holds (None: SQLite's
    busy timeout, PostgreSQL's lock_timeout); a read's failure says so of ``read_wait``.
    ``cutter``: its connection is shut down once the transaction is past ``bound`` seconds
    (its checkout, and its commit, included), and it fails then, StoreUnavailable saying so."""
    call = None if cutter is None else cutter.start(bound)
    try:
        with reader_said(read_wait), translated_errors(), engine.connect() as conn:
            if call is not None:
                call.hold(conn)
            try:
                if write and sqlite:
                    conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                    if ms is not None:
                        conn.execution_options(**{WAIT_OPTION: ms})
                with conn.begin():
                    if ms is not None and not sqlite:
                        conn.execute(LOCK_WAIT, {"ms": str(ms)})  # until the transaction ends
                    yield conn
            finally:
                if call is not None:
                    call.end()  # before the connection goes back to the pool
    except StoreUnavailable as err:
        if call is not None and call.tripped:
            raise StoreUnavailable(
                f"the run store did not answer within {bound:g}s; its connection was closed"
            ) from err
        raise
    finally:
        if call is not None:
            call.end()  # its checkout failed


def retried(
    tx: Callable[[], AbstractContextManager[Connection]],
    work: Callable[[Connection], _T],
    attempts: int,
) -> _T:
    """``work`` in the transaction ``tx`` makes, made again when the server rolled it back
    (RolledBack), ``attempts`` times in all; the last one's RolledBack is raised."""
    while True:
        try:
            with tx() as conn:
                return work(conn)
        except RolledBack:
            attempts -= 1
            if not attempts:
                raise
