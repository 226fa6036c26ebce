"""Ends a renewal the database never answers: the sockets of the membership engine's
connections are shut down once the renewal is past its budget.

The socket settings (``sql_schema.PG_SOCKET_DEFAULTS``) end a call whose server is cut off by
the network, and the renewal's ``statement_timeout`` one that a live server is slow to answer.
Neither ends a call through a proxy or load balancer in front of PostgreSQL that lost its
upstream but keeps the client's connection open: the proxy's kernel acknowledges the data and
answers the keepalives, and nothing ever comes back. Such a renewal waited for ever, and since a
renewal still in flight is awaited rather than started again (``controller.cluster``), the
replica stayed fenced after the database answered again. Shutting the socket down makes the
blocked read return at once; psycopg raises, the pool drops the connection, the renewal fails
(``MembershipUnavailable``) and the next one tries on a new connection.

Every connection of the engine is shut down, not only the renewal's (it is not known while the
pool pings it, before handing it over): the engine is the membership's own, and the others are
then idle in its pool, or stuck as well. An idle one shut down is replaced at its next use (the
pool pings it first)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

# How long after its budget a renewal is ended: the server's statement_timeout (the budget)
# comes first when the server is there to say so.
CUT_GRACE_S = 1.0


class Cutter:
    """Shuts down the sockets of ``engine``'s connections when a call under :meth:`bounded`
    outlives its time (``tripped`` then says so, until the next call)."""

    def __init__(self, engine: Engine) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.tripped = False
        event.listen(engine, "connect", self._connected)

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        with self._lock:
            self._connections.add(dbapi_connection)

    @contextlib.contextmanager
    def bounded(self, seconds: float | None) -> Iterator[None]:
        self.tripped = False
        if seconds is None:
            yield
            return
        timer = threading.Timer(seconds + CUT_GRACE_S, self._cut)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _cut(self) -> None:
        self.tripped = True
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(Exception):  # closed meanwhile, or no socket
                _shut(connection.pgconn.socket)


def _shut(fd: int) -> None:
    """Shut down the socket behind ``fd`` (a duplicate is made and closed: the connection's
    own descriptor stays its to close)."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.close()
