"""A renewal in PostgreSQL reads the database's clock, against which this replica's is estimated
(``SqlMembership.clock_offset``, ``membership.clock``). The server runs on this host, on the same
clock: the estimate must be within its uncertainty of the skew the test gives this replica's
clock, with the right sign and in seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.membership.base import Announcement
from reconciler.store import open_store
from reconciler.store.members import SqlMembership
from reconciler.store.sql_schema import create_engine

pytestmark = pytest.mark.postgres

ME = Announcement(id="a:1:a", lease_seconds=15.0)
# The clocks' resolutions (PostgreSQL's is a microsecond), rounded generously.
EPSILON = 0.01


@pytest.fixture
def url(pg_url: str) -> str:
    open_store(pg_url).close()  # migrated, members table included
    return pg_url


def renewed(url: str, ahead: float, *, judged_later: float = 0.0) -> SqlMembership:
    """A renewal by a replica whose clock is ``ahead`` seconds ahead of the database's."""
    membership = SqlMembership(
        create_engine(url),
        offset=lambda: judged_later,
        clock=lambda: datetime.now(UTC) + timedelta(seconds=ahead),
    )
    try:
        membership.renew(ME)
    finally:
        membership.close()
    return membership


def test_before_a_renewal_nothing_is_known(url: str) -> None:
    membership = SqlMembership.open(url)
    try:
        assert membership.clock_offset is None
    finally:
        membership.close()


def test_a_real_renewal_finds_the_clocks_together(url: str) -> None:
    membership = renewed(url, 0.0)
    offset = membership.clock_watch.offset
    assert offset is not None
    assert membership.clock_offset == offset.seconds
    assert abs(offset.seconds) <= offset.uncertainty + EPSILON
    assert abs(offset.seconds) < 1


@pytest.mark.parametrize("ahead", [5.0, -5.0])
def test_a_clock_ahead_is_positive_and_in_seconds(url: str, ahead: float) -> None:
    offset = renewed(url, ahead).clock_watch.offset
    assert offset is not None
    assert abs(offset.seconds - ahead) <= offset.uncertainty + EPSILON


def test_the_judging_clock_moved_by_a_test_is_not_the_database_clock(url: str) -> None:
    # ``offset`` lets tests pass time in the database without sleeping; it is no skew.
    offset = renewed(url, 0.0, judged_later=100.0).clock_watch.offset
    assert offset is not None
    assert abs(offset.seconds) <= offset.uncertainty + EPSILON
