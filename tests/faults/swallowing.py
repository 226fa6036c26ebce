"""A TCP proxy to PostgreSQL that can stop answering, as one in front of it that lost its
upstream and keeps the client's connection open does (the kernel acknowledges the data and
answers keepalives: neither the socket settings nor the server's timeouts end the wait), and a
call made from a thread given up on, so that a call that waits for ever fails its test."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import make_url

_T = TypeVar("_T")
# Only so that a call that waits for ever does not hold the test for ever.
GIVE_UP_S = 30.0


class Swallowing:
    """A TCP proxy to the database that, while ``swallow`` is set, takes what the client sends
    and forwards none of it: the client's connection stays open and is never answered."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.swallow = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.upstream)
                self.sockets += [client, server]
                threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
                threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self.swallow.is_set():
                    sink.sendall(data)

    def close(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()

    def url(self, pg_url: str) -> str:
        """``pg_url`` through this proxy; a connection made while it swallows waits out its
        connect timeout (2 s)."""
        url = make_url(pg_url)
        through = url.set(host="127.0.0.1", port=self.port)
        return through.update_query_dict({"connect_timeout": "2"}).render_as_string(False)

    @classmethod
    def to(cls, pg_url: str) -> Swallowing:
        url = make_url(pg_url)
        return cls(url.host or "127.0.0.1", url.port or 5432)


def answer(call: Callable[[], _T]) -> _T | Exception:
    """``call``'s answer or its error, from a thread given up on after ``GIVE_UP_S``."""
    got: list[_T | Exception] = []

    def work() -> None:
        try:
            got.append(call())
        except Exception as err:
            got.append(err)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(GIVE_UP_S)
    assert got, "the call never returned"
    return got[0]
