"""Ends a call to PostgreSQL that the database never answers: the socket under the call is shut
down once the call is past its bound (and a second more, ``CUT_GRACE_S``).

The socket settings (``sql_schema.PG_SOCKET_DEFAULTS``) end a call whose server is cut off by
the network, and the server's own timeouts one that a live server is slow to answer. Neither
ends a call through a proxy or load balancer in front of PostgreSQL that lost its upstream but
keeps the client's connection open: the proxy's kernel acknowledges the data and answers the
keepalives, and nothing ever comes back. Such a call waited for ever: a run's claim (under
``Forbid`` every later slot of its task was skipped for it), the records behind it, a
renewal. Shutting the socket down makes the blocked read return at once; psycopg raises, the
pool drops the connection, the call fails as an outage does (StoreUnavailable) and the next
one is made on a new connection.

A call says which connection it holds once it has one (:meth:`Call.hold`); only that one is
shut. A call past its bound before it holds one waits in the pool's check of an idle
connection (pre-ping), which is not known to it: then every connection of the engine that no
call holds is shut (the idle ones too, each replaced at its next use, the pool pinging it
first). SQLite has no socket: its calls are not watched.

One thread watches every call of the process (``Watchdog``): a call costs a heap push and, at
its end, a flag set under a lock; the thread wakes at the earliest deadline only."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

# How long after its bound a call is ended: the server's own timeouts (a lock wait, a
# statement_timeout) come first when the server is there to say so.
CUT_GRACE_S: Final = 1.0
# The run store's bounds on PostgreSQL (``sql.SqlRunStore``), its checkout and commit included.
# A write of a run's (a claim, a save, a mark; ``SqlRunStore._write``): five times its lock wait
# (WRITE_LOCK_WAIT), hundreds of times a batch's write; the recorder's callers stopped waiting
# long before (``lane.ANSWER_WAIT``), but the write is awaited before the next goes.
PG_WRITE_ANSWER_WAIT: Final = 10.0
# Any other call (a read, a step of the pruning): a page of a long history is read through.
PG_READ_ANSWER_WAIT: Final = 60.0


class Call:
    """One call under watch: when it is due, the connection it holds, whether it was cut."""

    __slots__ = ("_cutter", "connection", "due", "ended", "tripped")

    def __init__(self, cutter: Cutter, due: float) -> None:
        self._cutter = cutter
        self.due = due
        self.connection: Any = None  # the DBAPI connection, once held
        self.ended = False
        self.tripped = False  # shut past its bound: its error is that

    def hold(self, conn: Connection) -> None:
        """The call now runs on ``conn``: it alone is shut if the call is late."""
        self._cutter.hold(self, conn.connection.dbapi_connection)

    def end(self) -> None:
        """The call is over (before its connection goes back to the pool): not to be cut."""
        self._cutter.end(self)

    def cut(self) -> None:
        self._cutter.cut(self)


class Watchdog:
    """One daemon thread that cuts the calls still going at their due time."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Call]] = []
        self._order = itertools.count()  # ties: no Call comparison
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, call: Call) -> None:
        with self._wake:
            heapq.heappush(self._due, (call.due, next(self._order), call))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="crontask-store-watch", daemon=True
                )
                self._thread.start()
            elif self._due[0][2] is call:  # earlier than what the thread waits for
                self._wake.notify()

    def _run(self) -> None:
        while True:
            late: list[Call] = []
            with self._wake:
                while not late:
                    now = time.monotonic()
                    while self._due and (self._due[0][2].ended or self._due[0][0] <= now):
                        _, _, call = heapq.heappop(self._due)
                        if not call.ended:
                            late.append(call)
                    if not late:
                        self._wake.wait(self._due[0][0] - now if self._due else None)
            for call in late:
                call.cut()


_WATCHDOG = Watchdog()


class Cutter:
    """Shuts down the sockets of ``engine``'s connections under a call that outlives its
    bound (:meth:`start`, :meth:`bounded`)."""

    def __init__(self, engine: Engine) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._held: set[int] = set()  # id() of the connections calls hold
        self._lock = threading.Lock()
        event.listen(engine, "connect", self._connected)

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        with self._lock:
            self._connections.add(dbapi_connection)

    def start(self, seconds: float | None) -> Call:
        """A call that is cut ``seconds`` + ``CUT_GRACE_S`` from now (None: never), until
        :meth:`Call.end`."""
        call = Call(self, time.monotonic() + (seconds or 0.0) + CUT_GRACE_S)
        if seconds is not None:
            _WATCHDOG.watch(call)
        return call

    @contextlib.contextmanager
    def bounded(self, seconds: float | None) -> Iterator[Call]:
        """:meth:`start` for the block's time."""
        call = self.start(seconds)
        try:
            yield call
        finally:
            call.end()

    def hold(self, call: Call, dbapi_connection: Any) -> None:
        with self._lock:
            call.connection = dbapi_connection
            self._held.add(id(dbapi_connection))

    def end(self, call: Call) -> None:
        with self._lock:
            if not call.ended:
                call.ended = True
                if call.connection is not None:
                    self._held.discard(id(call.connection))

    def cut(self, call: Call) -> None:
        # Under the lock: a call that ends meanwhile has not yet handed its connection back.
        with self._lock:
            if call.ended:
                return
            call.tripped = True
            if call.connection is not None:
                shut = [call.connection]
            else:
                shut = [c for c in self._connections if id(c) not in self._held]
            for connection in shut:
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
