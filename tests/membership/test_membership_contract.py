"""One behaviour suite for every membership implementation: the in-memory registry (fake
clock), PostgreSQL's members table (the database's clock) and Kubernetes Leases in the
emulator (the observer's monotonic clock, as client-go judges leases)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.membership.base import Announcement, Membership, MembershipUnavailable
from reconciler.membership.leases import MEMBER_LABEL, LeaseMembership, lease_name
from reconciler.membership.memory import MemoryMembership, Registry
from tests.store.conftest import PG_ENV

LEASE = 15.0


@dataclass
class World:
    """Replicas of one implementation, and a way to let time pass for the judge."""

    join: Callable[[], Membership]
    wait: Callable[[float], None]  # let this many seconds pass on the judging clock
    cut: Callable[[Membership], None]  # make one replica's calls fail


def me(name: str, **fields: Any) -> Announcement:
    return Announcement(id=f"{name}:1:{name}", **{"lease_seconds": LEASE, **fields})


def _memory() -> Iterator[World]:
    now = [datetime(2026, 11, 30, 12, tzinfo=UTC)]
    registry = Registry(lambda: now[0])
    joined: list[MemoryMembership] = []

    def join() -> Membership:
        replica = MemoryMembership(registry)
        joined.append(replica)
        return replica

    def wait(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    def cut(replica: Membership) -> None:
        registry.unreachable.update(f"{n}:1:{n}" for n in ("a", "b", "c"))

    yield World(join, wait, cut)


def _postgres(url: str) -> Iterator[World]:
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership

    open_store(url).close()  # migrated, members table included
    opened: list[SqlMembership] = []
    offset = [0.0]  # the database's clock, moved forward instead of sleeping

    def join() -> Membership:
        replica = SqlMembership.open(url, offset=lambda: offset[0])
        opened.append(replica)
        return replica

    def wait(seconds: float) -> None:
        offset[0] += seconds

    def cut(replica: Membership) -> None:
        assert isinstance(replica, SqlMembership)
        replica.engine.dispose()
        replica.engine = SqlMembership.open(
            "postgresql+psycopg://nobody:wrong@127.0.0.1:1/none"
        ).engine

    yield World(join, wait, cut)
    for replica in opened:
        replica.close()


def _leases(api: Any) -> Iterator[World]:
    now = [1000.0]
    namespace = f"members-{uuid.uuid4().hex[:8]}"

    def join() -> Membership:
        return LeaseMembership(api, namespace, monotonic=lambda: now[0])

    def wait(seconds: float) -> None:
        now[0] += seconds

    def cut(replica: Membership) -> None:
        assert isinstance(replica, LeaseMembership)
        replica._leases.api_client.configuration.host = "http://127.0.0.1:1"

    yield World(join, wait, cut)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres), "leases"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
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


def test_a_renewal_is_a_join_and_shows_every_live_member(world: World) -> None:
    a, b = world.join(), world.join()
    first = a.renew(me("a", address="10.0.0.1:8080"))
    assert ids(first) == ["a:1:a"]
    both = b.renew(me("b", digest="d1", revision="abc", owned=7))
    assert ids(both) == ["a:1:a", "b:1:b"]
    seen = {m.id: m for m in a.renew(me("a", address="10.0.0.1:8080"))}
    assert seen["b:1:b"].digest == "d1"
    assert seen["b:1:b"].revision == "abc"
    assert seen["b:1:b"].owned == 7
    assert seen["a:1:a"].address == "10.0.0.1:8080"
    assert seen["a:1:a"].since == first[0].since  # renewing keeps the membership's start


def test_a_member_that_stops_renewing_expires(world: World) -> None:
    a, b = world.join(), world.join()
    a.renew(me("a"))
    b.renew(me("b"))
    # a sees b's renewal (for Leases, the observation is what starts b's clock).
    assert ids(a.renew(me("a"))) == ["a:1:a", "b:1:b"]
    world.wait(LEASE * 0.4)
    assert ids(a.renew(me("a"))) == ["a:1:a", "b:1:b"]  # not yet
    world.wait(LEASE * 0.7)  # b's last renewal is now more than a lease ago
    assert ids(a.renew(me("a"))) == ["a:1:a"]


def test_a_member_is_live_for_its_own_lease_not_the_askers(world: World) -> None:
    """A replica started with a longer --lease-duration fences itself at its own renew
    deadline: judged by the asker's shorter lease, it would be taken for dead while it still
    starts runs (test_mixed_lease_durations has the bound, and shorter leases)."""
    a, b = world.join(), world.join()
    a.renew(me("a"))
    b.renew(me("b", lease_seconds=3600.0))
    assert ids(a.renew(me("a"))) == ["a:1:a", "b:1:b"]
    world.wait(LEASE * 1.1)
    assert ids(a.renew(me("a"))) == ["a:1:a", "b:1:b"]
    world.wait(3600.0)
    assert ids(a.renew(me("a"))) == ["a:1:a"]


def test_leaving_is_seen_at_once(world: World) -> None:
    a, b = world.join(), world.join()
    a.renew(me("a"))
    b.renew(me("b"))
    b.leave(me("b"))
    b.leave(me("b"))  # already gone: no error
    assert ids(a.renew(me("a"))) == ["a:1:a"]


def test_an_unreachable_service_is_an_error_not_an_answer(world: World) -> None:
    a = world.join()
    a.renew(me("a"))
    world.cut(a)
    with pytest.raises(MembershipUnavailable):
        a.renew(me("a"))


def test_leases_are_labelled_and_named_for_kubectl(k8s_api_client: Any) -> None:
    from kubernetes import client

    namespace = "crontask"
    replica = LeaseMembership(k8s_api_client, namespace)
    replica.renew(me("pod-0"))
    found: Any = client.CoordinationV1Api(k8s_api_client).list_namespaced_lease(
        namespace, label_selector=MEMBER_LABEL
    )
    assert len(found.items) == 1
    lease: Any = found.items[0]
    assert lease.metadata.name == lease_name("pod-0:1:pod-0") == "crontask-pod-0-pod0"
    assert lease.spec.holder_identity == "pod-0:1:pod-0"
    assert lease.spec.lease_duration_seconds == 15


def test_a_draining_member_is_still_live_and_says_so(world: World) -> None:
    a, b = world.join(), world.join()
    a.renew(me("a"))
    b.renew(me("b", draining=True))
    seen = {m.id: m.draining for m in a.renew(me("a"))}
    assert seen == {"a:1:a": False, "b:1:b": True}
