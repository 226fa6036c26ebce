"""A ``members`` row whose ``since`` is a date PostgreSQL holds but Python does not
('infinity', a date BC, the year 10000): loading it would fail every replica's renewal, and
every replica would fence; nothing would run anywhere. Such a row is not a member, and is
forgotten, whoever's it claims to be."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from reconciler.membership.base import Announcement
from reconciler.store import open_store
from reconciler.store.members import SqlMembership

pytestmark = pytest.mark.postgres

# Dates PostgreSQL's timestamptz holds that psycopg cannot load (or, in a session time zone
# west of UTC, would not: year 1 at midnight UTC is year 0 there).
HOSTILE = [
    "'infinity'",
    "'-infinity'",
    "'0044-03-15 BC'",
    "'10000-01-01'",
    "'294276-12-31 00:00:00+00'",
    "'0001-01-01 00:00:00+00'",
]


def _me(name: str) -> Announcement:
    return Announcement(id=f"{name}:1:{name}", lease_seconds=15.0)


@pytest.fixture
def membership(pg_url: str) -> Iterator[SqlMembership]:
    open_store(pg_url).close()
    replica = SqlMembership.open(pg_url)
    yield replica
    replica.close()


def _rows(engine: sa.Engine) -> list[str]:
    with engine.begin() as conn:
        return sorted(conn.execute(sa.text("select id from members")).scalars())


@pytest.mark.parametrize("since", HOSTILE)
def test_a_row_with_a_since_python_cannot_hold_is_not_a_member(
    membership: SqlMembership, since: str
) -> None:
    membership.renew(_me("a"))
    with membership.engine.begin() as conn:
        # A live row in every other respect: renewed now, a lease of ours.
        conn.execute(
            sa.text(
                "insert into members (id, address, since, renewed, lease_seconds, owned, "  # noqa: S608
                f"draining) values ('x', null, {since}, now(), 15, 0, false)"
            )
        )
    assert [m.id for m in membership.renew(_me("a"))] == ["a:1:a"]
    assert _rows(membership.engine) == ["a:1:a"]  # forgotten at once


@pytest.mark.parametrize("since", HOSTILE[:3])
def test_our_own_row_given_such_a_since_is_a_new_membership(
    membership: SqlMembership, since: str
) -> None:
    """Another writer changed this replica's own row: it renews with a ``since`` of now (a
    membership begun again, as after an expiry), never with the one it cannot load."""
    first = membership.renew(_me("a"))[0].since
    with membership.engine.begin() as conn:
        conn.execute(sa.text(f"update members set since = {since}"))  # noqa: S608
    again = membership.renew(_me("a"))
    assert [m.id for m in again] == ["a:1:a"]
    assert again[0].since > first


def test_a_row_renewed_at_a_date_python_cannot_hold_is_not_a_member(
    membership: SqlMembership,
) -> None:
    membership.renew(_me("a"))
    with membership.engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into members (id, address, since, renewed, lease_seconds, owned, "
                "draining) values ('x', null, now(), '10000-01-01', 1e9, 0, false), "
                "('y', null, now(), '0044-03-15 BC', 1e9, 0, false)"
            )
        )
    assert [m.id for m in membership.renew(_me("a"))] == ["a:1:a"]
    assert _rows(membership.engine) == ["a:1:a"]
