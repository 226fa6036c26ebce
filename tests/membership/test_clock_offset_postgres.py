"""A renewal in PostgreSQL reads the database's clock, against which this replica's is estimated
(``SqlMembership.clock_offset``, ``membership.clock``). The server runs on this host, on the same
clock: the estimate must be within its uncertainty of the skew the test gives this replica's
clock, with the right sign and in seconds."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from reconciler.membership.base import Announcement
from reconciler.store import open_store
from reconciler.store.members import SqlMembership
from reconciler.store.sql_schema import create_engine, members

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


# The renewal's wait on the lock, as the database timed it: long enough that an estimate timed
# around the wait is surely off by more than the bound below (half of it).
HELD = 0.5
# Another session's hold of our row, as the database sees it: our row's lock, waited on by a
# backend blocked by the holder's (only this test's: others share the server), for ``HELD`` s.
_WAITED = sa.text(
    "SELECT count(*) FROM pg_locks WHERE NOT granted AND :holder = ANY(pg_blocking_pids(pid))"
    " AND clock_timestamp() - waitstart >= make_interval(secs => :held)"
)


def test_a_renewal_that_waited_on_a_lock_is_timed_around_the_clock_read_only(
    url: str, pg_admin: sa.Engine
) -> None:
    """The round trip that bounds the estimate is the statement that reads the database's clock
    alone: a renewal held behind our row's lock (another session's transaction, a vacuum) was
    timed from before the wait, so an exact clock read half the wait off, that wait its
    uncertainty. This checks the window, not the speed: on this host the statement's round trip
    is milliseconds, and the wait was surely ``HELD`` s long."""
    membership = SqlMembership(create_engine(url))
    engine = create_engine(url)
    try:
        membership.renew(ME)  # our row exists, to be held
        with engine.connect() as holder, ThreadPoolExecutor(1) as pool:
            holder.execute(sa.select(members.c.id).where(members.c.id == ME.id).with_for_update())
            pid = holder.execute(sa.select(sa.func.pg_backend_pid())).scalar_one()
            renewal = pool.submit(membership.renew, dataclasses.replace(ME, budget=30.0))
            deadline = time.monotonic() + 30
            with pg_admin.connect() as admin:  # autocommit: each poll sees the server anew
                while not admin.execute(_WAITED, {"holder": pid, "held": HELD}).scalar_one():
                    assert not renewal.done(), renewal.result()  # it never waited
                    assert time.monotonic() < deadline, "the renewal never waited for our row"
                    time.sleep(0.01)
            holder.commit()
            renewal.result(timeout=30)
    finally:
        engine.dispose()
        membership.close()
    offset = membership.clock_watch.offset
    assert offset is not None
    assert offset.uncertainty < 0.1
    assert abs(offset.seconds) < 0.1
