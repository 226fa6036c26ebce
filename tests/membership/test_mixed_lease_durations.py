"""Replicas started with different ``--lease-duration``s (a rolling update that shortens
failover on the new pods only: ``--lease-duration 1.5s --renew-deadline 1s --renew-interval
0.5s`` beside the defaults, 15s/10s/2s). Each member is judged by the lease it states itself,
as client-go's leader election judges a Lease by its own ``leaseDurationSeconds``: judged by the
observer's shorter one, a healthy replica that renews every 2 s was taken for dead between its
renewals, its running runs were marked interrupted and its tasks moved back and forth. The
stated lease is bounded by the longest ``--lease-duration`` accepts (``LONGEST_LEASE``), and a
replica with another lease duration is logged once for the life of the process, not at each
time it came back.

Every backend is driven on its judging clock (``World.wait``): the registry's fake clock,
PostgreSQL's ``now()`` moved by an offset, the observer's monotonic clock for Leases."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from kubernetes import client

from reconciler.membership.base import LONGEST_LEASE
from reconciler.membership.leases import MEMBER_LABEL, LeaseMembership, lease_name
from tests.membership.test_membership_contract import World, ids, me, world

__all__ = ["world"]  # the contract suite's fixture: every backend

SHORT = 1.5  # the new pods: --lease-duration 1.5s --renew-interval 0.5s
SHORT_RENEW = 0.5
LONG = 15.0  # the old pods: the defaults, renewing every 2 s
LONG_RENEW = 2.0


def test_a_short_lease_replica_sees_a_long_lease_one_live_between_its_renewals(
    world: World,
) -> None:
    new, old = world.join(), world.join()
    new.renew(me("new", lease_seconds=SHORT))
    old.renew(me("old", lease_seconds=LONG))
    both = ["new:1:new", "old:1:old"]
    assert ids(new.renew(me("new", lease_seconds=SHORT))) == both
    for _ in range(3):  # three of old's renewal intervals, new renewing every 0.5 s between
        for _ in range(int(LONG_RENEW / SHORT_RENEW)):
            world.wait(SHORT_RENEW)
            assert ids(new.renew(me("new", lease_seconds=SHORT))) == both
        old.renew(me("old", lease_seconds=LONG))


def test_a_long_lease_replica_that_stops_renewing_is_gone_after_its_own_lease(
    world: World,
) -> None:
    new, old = world.join(), world.join()
    old.renew(me("old", lease_seconds=LONG))
    assert ids(new.renew(me("new", lease_seconds=SHORT))) == ["new:1:new", "old:1:old"]
    world.wait(LONG - 1)  # old may still be starting runs until its renew deadline (10 s)
    assert ids(new.renew(me("new", lease_seconds=SHORT))) == ["new:1:new", "old:1:old"]
    world.wait(1.5)
    assert ids(new.renew(me("new", lease_seconds=SHORT))) == ["new:1:new"]


def test_a_short_lease_replica_is_still_judged_by_its_own_by_a_long_lease_one(
    world: World,
) -> None:
    new, old = world.join(), world.join()
    new.renew(me("new", lease_seconds=SHORT))
    assert ids(old.renew(me("old", lease_seconds=LONG))) == ["new:1:new", "old:1:old"]
    world.wait(2.0)  # past 1.5 s (and past 2 s, the whole seconds a Lease states it in)
    assert ids(old.renew(me("old", lease_seconds=LONG))) == ["old:1:old"]


# -- the bound: no stated lease is believed beyond the longest --lease-duration accepts ------


@pytest.mark.postgres
def test_a_row_is_live_for_its_own_lease_up_to_the_longest_and_no_longer(pg_url: str) -> None:
    """A row stating the longest lease --lease-duration accepts is live that long, then gone;
    one stating more is no member at all (nothing a replica can be started with writes it)."""
    import sqlalchemy as sa

    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership

    open_store(pg_url).close()
    offset = [0.0]
    a = SqlMembership.open(pg_url, offset=lambda: offset[0])
    try:
        with a.engine.begin() as conn:
            insert = "insert into members values (:id, null, now(), now(), :lease)"
            conn.execute(sa.text(insert), {"id": "longest", "lease": LONGEST_LEASE})
            conn.execute(sa.text(insert), {"id": "beyond", "lease": LONGEST_LEASE + 86400})
        assert ids(a.renew(me("a", lease_seconds=SHORT))) == ["a:1:a", "longest"]
        offset[0] += LONGEST_LEASE - 60
        assert ids(a.renew(me("a", lease_seconds=SHORT))) == ["a:1:a", "longest"]
        offset[0] += 61
        assert ids(a.renew(me("a", lease_seconds=SHORT))) == ["a:1:a"]
    finally:
        a.close()


def _lease(api: Any, namespace: str, holder: str, seconds: int) -> None:
    body: Any = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(holder),
            "namespace": namespace,
            "labels": {MEMBER_LABEL: "true"},
        },
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds},
    }
    client.CoordinationV1Api(api).create_namespaced_lease(namespace, body)


def test_a_lease_is_live_for_its_own_duration_up_to_the_longest_and_no_longer(
    k8s_api_client: Any,
) -> None:
    """The API server takes any int32 (68 years); a Lease stating more than the longest
    --lease-duration is judged by the longest."""
    namespace = f"members-{uuid.uuid4().hex[:8]}"
    now = [1000.0]
    a = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: now[0])
    long_, beyond = "long:1:long", "beyond:1:beyond"
    _lease(k8s_api_client, namespace, long_, 2**31 - 1)
    _lease(k8s_api_client, namespace, beyond, int(LONGEST_LEASE) * 10)
    everyone = sorted(["a:1:a", long_, beyond])
    assert sorted(ids(a.renew(me("a", lease_seconds=SHORT)))) == everyone
    now[0] += 2**31 - 2
    assert sorted(ids(a.renew(me("a", lease_seconds=SHORT)))) == everyone
    now[0] += 1  # long's own duration
    assert sorted(ids(a.renew(me("a", lease_seconds=SHORT)))) == ["a:1:a", beyond]
    now[0] = 1000.0 + LONGEST_LEASE
    assert ids(a.renew(me("a", lease_seconds=SHORT))) == ["a:1:a"]


# -- logged once per member, for the life of the process ---------------------------------


@pytest.mark.parametrize("world", ["postgres", "leases"], indirect=True)
def test_another_lease_duration_is_logged_once_per_member_even_if_it_comes_back(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    new, old = world.join(), world.join()
    with caplog.at_level(logging.WARNING, logger="crontask.membership"):
        for _ in range(2):  # old lives, then is gone for a while (cut off), then is back
            old.renew(me("old", lease_seconds=LONG))
            assert "old:1:old" in ids(new.renew(me("new", lease_seconds=SHORT)))
            world.wait(LONG + 1)
            assert ids(new.renew(me("new", lease_seconds=SHORT))) == ["new:1:new"]
        assert ids(old.renew(me("old", lease_seconds=LONG))) == ["new:1:new", "old:1:old"]
    told = [
        str(getattr(r, "fields", {}).get("member"))
        for r in caplog.records
        if "another lease duration" in r.getMessage()
    ]
    # new of old once, though old was gone and came back; old of new once
    assert sorted(told) == ["new:1:new", "old:1:old"]
