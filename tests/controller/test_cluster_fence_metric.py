"""The fence in the metrics: ``crontask_replica_fenced`` says 1 from the moment a replica that
has not renewed within its renew deadline stops starting runs, and 0 again once a renewal
works, though a fenced replica's other gauges (``crontask_members``) keep their last values.
On the in-memory twins and the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from reconciler.sinks.metrics import Metrics
from tests.controller.test_cluster import Replica, World, settle


def gauges(metrics: Metrics) -> dict[str, float]:
    text = metrics.render()[0].decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def watched(replica: Replica) -> Metrics:
    metrics = Metrics()
    replica.cluster.on_renewal = metrics.replicas  # as runtime.serve wires it
    return metrics


def test_the_gauge_follows_the_fence_on_and_off(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        metrics = watched(a)
        await settle([a, b])
        assert gauges(metrics)["crontask_replica_fenced"] == 0
        assert gauges(metrics)["crontask_members"] == 2
        world.registry.unreachable.add(a.id)
        world.clocks.advance(8)
        assert not await a.step()
        assert gauges(metrics)["crontask_replica_fenced"] == 0  # within the renew deadline
        world.clocks.advance(3)  # 11 s: past the 10 s deadline
        assert not await a.step()
        assert a.dispatcher.paused is not None
        assert gauges(metrics)["crontask_replica_fenced"] == 1
        assert gauges(metrics)["crontask_members"] == 2  # the last renewal's view, unchanged
        world.clocks.advance(2)
        assert not await a.step()
        assert gauges(metrics)["crontask_replica_fenced"] == 1  # still failing: still fenced
        world.registry.unreachable.clear()
        assert await a.step()
        assert a.dispatcher.paused is None
        assert gauges(metrics)["crontask_replica_fenced"] == 0

    asyncio.run(main())


def test_the_gauge_is_set_where_the_fence_comes_on_between_renewals(tmp_path: Path) -> None:
    """A process paused past its deadline (SIGSTOP) and resumed: the dispatcher's own look at
    the clock, before a retry, fences it before any renewal has failed."""

    async def main() -> None:
        world = World(tmp_path)
        (a,) = world.replicas("a")
        metrics = watched(a)
        await settle([a])
        world.clocks.advance(11)
        a.dispatcher.fence()
        assert a.dispatcher.paused is not None
        assert gauges(metrics)["crontask_replica_fenced"] == 1
        assert await a.step()
        assert gauges(metrics)["crontask_replica_fenced"] == 0

    asyncio.run(main())


def test_a_replica_that_cannot_join_says_it_is_fenced(tmp_path: Path) -> None:
    """Every replica started during a run-store or API-server outage: none has renewed once,
    and each says it starts no runs (not a stale or absent gauge)."""

    async def main() -> None:
        world = World(tmp_path)
        (a,) = world.replicas("a")
        metrics = watched(a)
        world.registry.unreachable.add(a.id)
        assert not await a.cluster.tick()
        assert "crontask_replica_fenced" not in gauges(metrics)  # within the deadline
        world.clocks.advance(10)
        assert not await a.cluster.tick()
        assert gauges(metrics)["crontask_replica_fenced"] == 1
        assert gauges(metrics)["crontask_members"] == 0

    asyncio.run(main())
