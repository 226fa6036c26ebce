"""The renewals a replica makes while what follows a renewal waits on the run store
(``Cluster._follow_renewing``): they keep its membership, but never hide a lapse. The
follow-up is held on an event; the registry is the in-memory one, on the real clock."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from reconciler.controller.cluster import Cluster
from reconciler.controller.queue import WorkQueue
from reconciler.membership.base import Announcement, Member, Membership, Timing
from reconciler.membership.leases import LeaseMembership, lease_name
from reconciler.membership.memory import MemoryMembership, Registry
from tests.controller.test_cluster import Replica, World


def _cluster(replica: Replica, membership: Membership, world: World, timing: Timing) -> Cluster:
    return Cluster(
        Announcement(replica.id),
        membership,
        world.views,
        store=world.store,
        reconciler=replica.reconciler,
        dispatcher=replica.dispatcher,
        queue=WorkQueue(),
        stopping=replica.stopping,
        timing=timing,
        monotonic=time.monotonic,
    )


async def _until(what: str, condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _held_follow(cluster: Cluster, release: asyncio.Event) -> asyncio.Event:
    """The follow-up of the next renewal waits for ``release`` (a lock on ``runs``); the
    event returned is set once it waits."""
    follow, entered = cluster._follow, asyncio.Event()

    async def held(members: list[Member]) -> None:
        entered.set()
        await release.wait()
        await follow(members)

    cluster._follow = held  # type: ignore[method-assign]
    return entered


def test_a_record_made_anew_while_following_is_a_lapse_the_next_tick_sees(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The record expired and was written anew (the others may have taken the tasks): a
    renewal made while the follow-up waits does not count as one that kept the membership."""
    timing = Timing(renew_interval=0.2, renew_deadline=5.0, lease_seconds=6.0)

    async def main() -> None:
        world = World(tmp_path)
        world.registry = Registry(lambda: datetime.now(UTC))  # on the clock the cluster reads
        (a,) = world.replicas("a")
        membership = MemoryMembership(world.registry)
        cluster = a.cluster = _cluster(a, membership, world, timing)
        assert await cluster.tick()
        release = asyncio.Event()
        entered = _held_follow(cluster, release)
        renewals: list[float] = []
        renew = membership.renew

        def counted(me: Announcement) -> list[Member]:
            renewals.append(time.monotonic())
            return renew(me)

        membership.renew = counted  # type: ignore[method-assign]
        tick = asyncio.ensure_future(cluster.tick())
        await _until("the follow-up to wait", entered.is_set)
        kept = cluster._last_renewal
        del world.registry.records[a.id]  # expired and gone: the next renewal makes it anew
        await _until("a renewal while the follow-up waits", lambda: len(renewals) >= 3)
        assert cluster._last_renewal == kept  # not taken as a renewal that kept the membership
        release.set()
        assert await tick
        caplog.clear()
        assert await cluster.tick()
        assert "membership had lapsed" in caplog.text

    asyncio.run(main())


def test_a_lease_deleted_while_following_is_a_lapse_the_next_tick_sees(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, k8s_api_client: Any
) -> None:
    """On Kubernetes Leases: ours deleted (swept as expired, by hand) while the follow-up
    waits; the renewal that finds it gone makes it anew with a new ``since``, which is no
    renewal that kept the membership: the next tick says it lapsed."""
    timing = Timing(renew_interval=0.2, renew_deadline=5.0, lease_seconds=6.0)
    namespace = f"members-{uuid.uuid4().hex[:8]}"
    leases = client.CoordinationV1Api(k8s_api_client)

    async def main() -> None:
        world = World(tmp_path)
        (a,) = world.replicas("a")
        membership = LeaseMembership(k8s_api_client, namespace)
        cluster = a.cluster = _cluster(a, membership, world, timing)
        assert await cluster.tick()
        release = asyncio.Event()
        entered = _held_follow(cluster, release)
        renewals: list[float] = []
        renew = membership.renew

        def counted(me: Announcement) -> list[Member]:
            renewals.append(time.monotonic())
            return renew(me)

        membership.renew = counted  # type: ignore[method-assign]
        tick = asyncio.ensure_future(cluster.tick())
        await _until("the follow-up to wait", entered.is_set)
        kept = cluster._last_renewal
        leases.delete_namespaced_lease(lease_name(a.id), namespace)
        await _until("a renewal while the follow-up waits", lambda: len(renewals) >= 3)
        assert cluster._last_renewal == kept
        release.set()
        assert await tick
        caplog.clear()
        assert await cluster.tick()
        assert "membership had lapsed" in caplog.text

    asyncio.run(main())
