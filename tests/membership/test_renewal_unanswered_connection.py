"""A renewal on a connection the database never answers (a proxy or load balancer in front of
PostgreSQL that lost its upstream and keeps the client's TCP connection open: the kernel answers
keepalives, no data is lost unacknowledged, so neither the socket settings nor the server's
``statement_timeout`` end the wait) fails within its budget, and the next renewal, once the
database answers again, works. It waited for ever: the replica, fenced at its renew deadline,
never renewed again although the database was back."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from reconciler.membership.base import Announcement, Member, MembershipUnavailable
from reconciler.store import open_store
from reconciler.store.members import SqlMembership

pytestmark = pytest.mark.postgres

ME = Announcement(id="a:1:a", lease_seconds=15.0, budget=1.0)
# Only so that a renewal that waits for ever does not hold the test for ever.
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


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[str, Swallowing]]:
    open_store(pg_url).close()  # migrated, members table included
    url = make_url(pg_url)
    proxy = Swallowing(url.host or "127.0.0.1", url.port or 5432)
    try:
        # A connection made through it while it swallows waits out its connect timeout.
        through = url.set(host="127.0.0.1", port=proxy.port).update_query_dict(
            {"connect_timeout": "2"}
        )
        yield through.render_as_string(False), proxy
    finally:
        proxy.close()


def renewal(membership: SqlMembership) -> list[Member] | BaseException:
    """The renewal's members or its error, from a thread given up on after ``GIVE_UP_S``."""
    answer: list[list[Member] | BaseException] = []

    def renew() -> None:
        try:
            answer.append(membership.renew(ME))
        except Exception as err:
            answer.append(err)

    worker = threading.Thread(target=renew, daemon=True)
    worker.start()
    worker.join(GIVE_UP_S)
    assert answer, "the renewal never returned"
    return answer[0]


def test_a_renewal_never_answered_fails_and_the_next_one_works(
    proxied: tuple[str, Swallowing],
) -> None:
    url, proxy = proxied
    membership = SqlMembership.open(url)
    try:
        assert [m.id for m in renewal(membership)] == [ME.id]  # type: ignore[union-attr]
        proxy.swallow.set()
        assert isinstance(renewal(membership), MembershipUnavailable)
        proxy.swallow.clear()
        assert [m.id for m in renewal(membership)] == [ME.id]  # type: ignore[union-attr]
    finally:
        membership.close()
