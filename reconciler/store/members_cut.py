"""Ends a renewal the database never answers: the sockets of the membership engine's
connections are shut down once the renewal is past its budget (``sql_cut``, which the run
store's calls use too).

The socket settings (``sql_schema.PG_SOCKET_DEFAULTS``) end a call whose server is cut off by
the network, and the renewal's ``statement_timeout`` one that a live server is slow to answer.
Neither ends a call through a proxy or load balancer in front of PostgreSQL that lost its
upstream but keeps the client's connection open. Such a renewal waited for ever, and since a
renewal still in flight is awaited rather than started again (``controller.cluster``), the
replica stayed fenced after the database answered again. Its connections shut, the renewal
fails (``MembershipUnavailable``) and the next one tries on a new connection.

A renewal does not say which connection it holds (the pool pings one before handing it over):
every connection of the engine is shut down. The engine is the membership's own, and the
others are then idle in its pool, or stuck as well; an idle one shut down is replaced at its
next use (the pool pings it first)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from reconciler.store import sql_cut
from reconciler.store.sql_cut import CUT_GRACE_S as CUT_GRACE_S


class Cutter(sql_cut.Cutter):
    """:class:`sql_cut.Cutter` whose ``tripped`` says whether the last call was cut, until the
    next call (the renewals go one at a time)."""

    tripped = False

    @contextlib.contextmanager
    def bounded(self, seconds: float | None) -> Iterator[sql_cut.Call]:
        self.tripped = False
        with super().bounded(seconds) as call:
            try:
                yield call
            finally:
                self.tripped = call.tripped
