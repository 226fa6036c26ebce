"""Records another writer left in the shared membership service: a Lease with the member label,
a ``members`` row. Anyone can write one, so none of them may make a renewal raise (every replica
would stop) or keep a task on a replica that does not renew."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from kubernetes import client

from reconciler.membership.base import Announcement, MembershipUnavailable
from reconciler.membership.leases import MEMBER_LABEL, LeaseMembership, lease_name

A = "a:1:aaaa"


def _lease(
    api: Any, namespace: str, name: str, holder: str, notes: dict[str, str], **spec: Any
) -> None:
    body: Any = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MEMBER_LABEL: "true"},
            "annotations": notes,
        },
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, **spec},
    }
    client.CoordinationV1Api(api).create_namespaced_lease(namespace, body)


@pytest.fixture
def leases(k8s_api_client: Any) -> tuple[Any, str, list[float]]:
    return k8s_api_client, f"members-{uuid.uuid4().hex[:8]}", [1000.0]


@pytest.mark.parametrize(
    "notes",
    [
        {"crontask.dev/owned": "\u00b2"},  # a digit to str.isdigit, not to int()
        # (a since that overflows when made UTC reads as the renewal: test_lease_since_hostile)
    ],
)
def test_a_lease_that_does_not_parse_is_skipped_not_raised(
    leases: tuple[Any, str, list[float]], notes: dict[str, str]
) -> None:
    api, namespace, now = leases
    a = LeaseMembership(api, namespace, monotonic=lambda: now[0])
    a.renew(Announcement(A))
    _lease(api, namespace, lease_name("b:1:bbbb"), "b:1:bbbb", {})
    odd = "c:1:cccc"
    _lease(api, namespace, lease_name(odd), odd, notes)
    for _ in range(2):  # refused each time, logged once
        assert [m.id for m in a.renew(Announcement(A))] == [A, "b:1:bbbb"]


def test_a_lease_not_named_for_its_holder_is_not_a_member(
    leases: tuple[Any, str, list[float]],
) -> None:
    api, namespace, now = leases
    a = LeaseMembership(api, namespace, monotonic=lambda: now[0])
    a.renew(Announcement(A))
    # A dead replica's identity, kept under another name by someone else.
    _lease(api, namespace, "zombie", "b:1:bbbb", {})
    assert [m.id for m in a.renew(Announcement(A))] == [A]


def test_a_lease_is_live_for_its_own_duration_not_ours(
    leases: tuple[Any, str, list[float]],
) -> None:
    """Its holder fences itself at its own renew deadline: taken for dead after ours, its runs
    would be marked interrupted and its tasks run twice. (The bound on what a Lease may state:
    test_mixed_lease_durations.)"""
    api, namespace, now = leases
    a = LeaseMembership(api, namespace, monotonic=lambda: now[0])
    a.renew(Announcement(A, lease_seconds=15))
    b = "b:1:bbbb"
    _lease(api, namespace, lease_name(b), b, {}, leaseDurationSeconds=3600)
    assert [m.id for m in a.renew(Announcement(A, lease_seconds=15))] == [A, b]
    now[0] += 15  # never renewed since: still live, by its own duration
    assert [m.id for m in a.renew(Announcement(A, lease_seconds=15))] == [A, b]
    now[0] += 3600 - 15
    assert [m.id for m in a.renew(Announcement(A, lease_seconds=15))] == [A]


# -- PostgreSQL's members table ------------------------------------------------------------


def _me(name: str, **fields: Any) -> Announcement:
    return Announcement(id=f"{name}:1:{name}", **{"lease_seconds": 15.0, **fields})


def _row(engine: Any, member: str, *, renewed: str = "now()", lease: str = "15") -> None:
    with engine.begin() as conn:
        # The values are SQL literals of the tests' own (casts and expressions included).
        insert = f"insert into members values (:id, null, now(), {renewed}, {lease})"  # noqa: S608
        conn.execute(sa.text(insert), {"id": member})


def _count(engine: Any, table: sa.Table) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("renewed", "lease"),
    [
        ("now()", "1e16"),  # an interval out of range
        ("now()", "'NaN'"),
        ("now()", "0"),
        ("now()", "-15"),
        ("'infinity'", "15"),
        ("'-infinity'", "15"),
        ("'9999-01-01'", "15"),  # renewed in the future: live until then, if believed
    ],
)
def test_a_row_out_of_range_is_not_a_member_and_is_forgotten(
    pg_url: str, renewed: str, lease: str
) -> None:
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership
    from reconciler.store.sql_schema import members

    open_store(pg_url).close()
    a = SqlMembership.open(pg_url)
    try:
        a.renew(_me("a"))
        _row(a.engine, "x", renewed=renewed, lease=lease)
        assert [m.id for m in a.renew(_me("a"))] == ["a:1:a"]
        assert _count(a.engine, members) == 1
        assert [m.id for m in a.renew(_me("a"))] == ["a:1:a"]
    finally:
        a.close()


@pytest.mark.postgres
def test_a_row_is_live_for_its_own_lease_not_ours(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica started with a longer --lease-duration and killed, or a row another client
    wrote with a century-long lease: a member for its own lease (its holder fences itself at
    its own renew deadline, not ours), forgotten after ten of them, logged once. (The bound on
    what a row may state: test_mixed_lease_durations.)"""
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership
    from reconciler.store.sql_schema import members

    open_store(pg_url).close()
    offset = [0.0]
    a = SqlMembership.open(pg_url, offset=lambda: offset[0])
    try:
        _row(a.engine, "x", lease=str(100 * 365 * 86400.0))
        _row(a.engine, "killed", lease="3600")  # --lease-duration 1h, then kill -9
        _row(a.engine, "y", lease="0.1", renewed="now() + interval '1 day'")
        assert [m.id for m in a.renew(_me("a"))] == ["a:1:a", "killed", "x"]
        assert [m.id for m in a.renew(_me("a"))] == ["a:1:a", "killed", "x"]
        told = [
            r.fields["member"]  # type: ignore[attr-defined]
            for r in caplog.records
            if "another lease duration" in r.getMessage()
        ]
        assert told == ["killed", "x"]  # once each
        offset[0] += 15  # ours has passed, not theirs
        assert [m.id for m in a.renew(_me("a"))] == ["a:1:a", "killed", "x"]
        offset[0] += 3600 - 15
        assert [m.id for m in a.renew(_me("a"))] == ["a:1:a", "x"]
        assert _count(a.engine, members) == 3
        offset[0] += 3600 * 9
        assert [m.id for m in a.renew(_me("a"))] == ["a:1:a", "x"]
        assert _count(a.engine, members) == 2
    finally:
        a.close()


@pytest.mark.postgres
def test_a_shorter_lease_than_ours_is_still_judged_by_its_own(pg_url: str) -> None:
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership

    open_store(pg_url).close()
    offset = [0.0]
    a = SqlMembership.open(pg_url, offset=lambda: offset[0])
    try:
        _row(a.engine, "short", lease="5")
        assert [m.id for m in a.renew(_me("a"))] == ["a:1:a", "short"]
        offset[0] += 5
        assert [m.id for m in a.renew(_me("a"))] == ["a:1:a"]
    finally:
        a.close()


@pytest.mark.postgres
def test_the_views_of_forgotten_members_go_with_them(pg_url: str) -> None:
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership, SqlViews
    from reconciler.store.sql_schema import member_views, members

    open_store(pg_url).close()
    offset = [0.0]
    a = SqlMembership.open(pg_url, offset=lambda: offset[0])
    try:
        views = SqlViews(a.engine)
        for generation in range(3):  # killed and restarted: a new instance id each time
            dead = _me(f"dead{generation}")
            a.renew(dead)
            views.publish(dead.id, {f"default/t{i}": "h" for i in range(10)})
        offset[0] += 15 * 5  # expired, not forgotten yet: their views stay
        survivor = _me("survivor")
        a.renew(survivor)
        views.publish(survivor.id, {"default/t0": "h"})
        assert _count(a.engine, member_views) == 31
        offset[0] += 15 * 6  # past ten lease durations
        a.renew(survivor)
        assert _count(a.engine, members) == 1
        assert _count(a.engine, member_views) == 1
    finally:
        a.close()


@pytest.mark.postgres
def test_a_renewal_waiting_on_a_lock_fails_within_its_budget(pg_url: str) -> None:
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership

    open_store(pg_url).close()
    a = SqlMembership.open(pg_url)
    locker = sa.create_engine(pg_url)
    try:
        a.renew(_me("a"))
        with locker.begin() as conn:
            conn.execute(sa.text("select * from members where id = 'a:1:a' for update"))
            failed: list[BaseException] = []

            def renew() -> None:
                try:
                    a.renew(_me("a", budget=0.5))
                except BaseException as err:
                    failed.append(err)

            worker = threading.Thread(target=renew)
            worker.start()
            worker.join(30)  # the lock is held until the renewal gives up
            assert not worker.is_alive()
        assert len(failed) == 1
        assert isinstance(failed[0], MembershipUnavailable)
        assert [m.id for m in a.renew(_me("a", budget=0.5))] == ["a:1:a"]
    finally:
        locker.dispose()
        a.close()
