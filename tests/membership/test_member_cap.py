"""A renewal returns at most so many members, whatever was written to the shared service: its
own record always, those that published a view first, and a warning naming how many are live.
Without the cap, 20 000 rows another client wrote were read by every replica on every renewal,
until renewals missed their deadline and every replica fenced."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.membership.base import Announcement, Cap, Membership
from reconciler.membership.leases import LeaseMembership
from reconciler.membership.memory import MemoryMembership, Registry
from tests.store.conftest import PG_ENV

MOST = 2
Join = Callable[[], Membership]


def me(name: str, **fields: Any) -> Announcement:
    return Announcement(id=f"{name}:1:{name}", **{"lease_seconds": 15.0, **fields})


def _memory() -> Iterator[Join]:
    registry = Registry(lambda: datetime(2026, 11, 30, 12, tzinfo=UTC), most=MOST)
    yield lambda: MemoryMembership(registry)


def _postgres(url: str) -> Iterator[Join]:
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership

    open_store(url).close()
    opened: list[SqlMembership] = []

    def join() -> Membership:
        opened.append(SqlMembership.open(url, most=MOST))
        return opened[-1]

    yield join
    for replica in opened:
        replica.close()


def _leases(api: Any) -> Iterator[Join]:
    namespace = f"members-{uuid.uuid4().hex[:8]}"
    yield lambda: LeaseMembership(api, namespace, monotonic=lambda: 1000.0, most=MOST)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres), "leases"])
def join(request: pytest.FixtureRequest) -> Iterator[Join]:
    if request.param == "memory":
        yield from _memory()
    elif request.param == "postgres":
        if not os.environ.get(PG_ENV):
            pytest.skip(f"set {PG_ENV}")
        yield from _postgres(request.getfixturevalue("pg_url"))
    else:
        yield from _leases(request.getfixturevalue("k8s_api_client"))


def ids(members: list[Any]) -> list[str]:
    return [m.id for m in members]


def test_a_renewal_returns_at_most_so_many_members_its_own_among_them(join: Join) -> None:
    a, b, c = join(), join(), join()
    b.renew(me("b", digest="d1"))
    c.renew(me("c", digest="d1"))
    found = ids(a.renew(me("a")))  # no view yet, and the last to sort: still there
    assert len(found) == MOST
    assert "a:1:a" in found


def test_members_that_published_a_view_are_read_first(join: Join) -> None:
    a, b, c = join(), join(), join()
    c.renew(me("c", digest="d1"))
    b.renew(me("b"))  # sorts before c, renewed after it: no view yet
    a.renew(me("a", digest="d1"))
    assert ids(a.renew(me("a", digest="d1"))) == ["a:1:a", "c:1:c"]


def test_the_members_a_replica_knows_are_read_before_any_other(join: Join) -> None:
    """Whoever writes records sways which others a cut list holds, never the known ones: a
    known member missing from it is not live (``core.assignment.assigned_over``)."""
    a, b, c, d = join(), join(), join(), join()
    b.renew(me("b"))  # no view, and the first renewed: last by every other rank
    c.renew(me("c", digest="d1"))
    d.renew(me("d", digest="d1"))
    knows_b = me("a", known=frozenset({"b:1:b", "gone:1:x"}))
    assert ids(a.renew(knows_b)) == ["a:1:a", "b:1:b"]
    assert a.live_count == 4
    assert ids(a.renew(me("a"))) != ["a:1:a", "b:1:b"]


def test_a_warning_names_how_many_are_live_once(
    join: Join, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c = join(), join(), join()
    b.renew(me("b"))
    c.renew(me("c"))
    with caplog.at_level(logging.INFO, logger="crontask.membership"):
        for _ in range(3):
            a.renew(me("a"))
        c.leave(me("c"))
        a.renew(me("a"))
    said = [(r.levelname, getattr(r, "fields", {})) for r in caplog.records]
    assert said == [
        ("ERROR", {"live": 3, "read": MOST}),
        ("INFO", {"live": 2}),
    ]


def test_a_cut_list_is_said_again_every_minute_while_it_lasts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    cap = Cap(2, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="crontask.membership"):
        for at, live in ((0, 3), (30, 3), (59, 4), (61, 3), (62, 2), (63, 3)):
            now[0] = at
            cap.count(live)
    said = [(r.levelname, r.fields["live"]) for r in caplog.records]  # type: ignore[attr-defined]
    assert said == [("ERROR", 3), ("ERROR", 3), ("INFO", 2), ("ERROR", 3)]


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Cap(0)


@pytest.mark.postgres
def test_thousands_of_foreign_rows_do_not_push_a_replica_out(pg_url: str) -> None:
    """Rows another client wrote, some with a view and dated ahead of now: a renewal reads the
    default cap's worth, this replica's and the other replica's rows among them."""
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership
    from reconciler.store.sql_schema import members

    open_store(pg_url).close()
    a, b = SqlMembership.open(pg_url), SqlMembership.open(pg_url)
    try:
        a.renew(me("a"))
        with a.engine.begin() as conn:
            for n, (digest, ahead) in enumerate([(None, "0"), ("'d'", "10")]):
                conn.execute(
                    sa.text(
                        "insert into members (id, address, since, renewed, lease_seconds, "  # noqa: S608
                        "digest, owned, draining) select 'fake-' || g, null, now(), "
                        f"now() + interval '{ahead} seconds', 15, {digest or 'null'}, 0, false "
                        f"from generate_series({n * 1500}, {n * 1500 + 1499}) g"
                    )
                )
        b.renew(me("b", digest="d"))
        found = ids(a.renew(me("a")))
        assert len(found) == 1000
        assert {"a:1:a", "b:1:b"} <= set(found)
        assert found == sorted(found)
        with a.engine.begin() as conn:  # the rows are there: only what is read is capped
            assert conn.execute(sa.select(sa.func.count()).select_from(members)).scalar() == 3002
    finally:
        a.close()
        b.close()


def test_the_memory_twin_prefers_the_most_recently_renewed() -> None:
    now = [datetime(2026, 11, 30, 12, tzinfo=UTC)]
    registry = Registry(lambda: now[0], most=MOST)
    a, b, c = (MemoryMembership(registry) for _ in range(3))
    c.renew(me("c"))
    now[0] += timedelta(seconds=1)
    b.renew(me("b"))
    now[0] += timedelta(seconds=1)
    assert ids(a.renew(me("a"))) == ["a:1:a", "b:1:b"]
