"""A renewal on a connection the database never answers (a proxy or load balancer in front of
PostgreSQL that lost its upstream and keeps the client's TCP connection open: the kernel answers
keepalives, no data is lost unacknowledged, so neither the socket settings nor the server's
``statement_timeout`` end the wait) fails within its budget, and the next renewal, once the
database answers again, works. It waited for ever: the replica, fenced at its renew deadline,
never renewed again although the database was back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.membership.base import Announcement, MembershipUnavailable
from reconciler.store import open_store
from reconciler.store.members import SqlMembership
from tests.faults.swallowing import Swallowing, answer

pytestmark = pytest.mark.postgres

ME = Announcement(id="a:1:a", lease_seconds=15.0, budget=1.0)


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[str, Swallowing]]:
    open_store(pg_url).close()  # migrated, members table included
    proxy = Swallowing.to(pg_url)
    try:
        yield proxy.url(pg_url), proxy
    finally:
        proxy.close()


def test_a_renewal_never_answered_fails_and_the_next_one_works(
    proxied: tuple[str, Swallowing],
) -> None:
    url, proxy = proxied
    membership = SqlMembership.open(url)
    try:
        assert [m.id for m in answer(lambda: membership.renew(ME))] == [ME.id]  # type: ignore[union-attr]
        proxy.swallow.set()
        assert isinstance(answer(lambda: membership.renew(ME)), MembershipUnavailable)
        proxy.swallow.clear()
        assert [m.id for m in answer(lambda: membership.renew(ME))] == [ME.id]  # type: ignore[union-attr]
    finally:
        membership.close()
