"""A replica whose clock is off the membership service's says so: ``crontask_clock_offset_seconds``
after each renewal, and a warning once it is off by more than a second (``membership.clock``).
Replicas time slots by their own clocks, and nothing else compares them. On the in-memory twins
and the fake clocks of ``test_cluster``: the registry's clock is the database's."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from reconciler.membership.memory import MemoryMembership
from reconciler.sinks.metrics import Metrics
from tests.controller.test_cluster import Replica, World, settle
from tests.controller.test_cluster_fence_metric import gauges


def skewed(world: World, replica: Replica, seconds: list[float]) -> Metrics:
    """``replica``'s own clock ``seconds[0]`` ahead of the registry's, its renewals reported to
    metrics as ``runtime.serve`` wires them."""

    def clock() -> datetime:
        return world.clocks.now + timedelta(seconds=seconds[0])

    replica.cluster.membership = MemoryMembership(world.registry, clock=clock)
    metrics = Metrics()
    replica.cluster.on_renewal = metrics.replicas
    return metrics


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "crontask.membership" and r.levelno == logging.WARNING
    ]


def test_a_replica_ahead_exports_its_offset_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.membership")

    async def main() -> None:
        world = World(tmp_path)
        a, b = world.replicas("a", "b")
        skew = [4.0]
        ahead, in_step = skewed(world, a, skew), skewed(world, b, [0.0])
        await settle([a, b])
        assert gauges(ahead)["crontask_clock_offset_seconds"] == 4
        assert gauges(in_step)["crontask_clock_offset_seconds"] == 0
        (said,) = warnings(caplog)  # four renewals, one warning: b's clock is in step
        assert "replicas time slots by their own clocks" in said.getMessage()
        assert "(NTP)" in said.getMessage()
        assert getattr(said, "fields", None) == {"offset_seconds": 4, "uncertainty_seconds": 0}
        skew[0] = 0.25  # set right (NTP stepped it): the gauge follows, the log says so
        world.clocks.advance(2)
        assert await a.step()
        assert gauges(ahead)["crontask_clock_offset_seconds"] == 0.25
        last = [r for r in caplog.records if r.name == "crontask.membership"][-1]
        assert last.getMessage().startswith("this replica's clock agrees")
        assert len(warnings(caplog)) == 1

    asyncio.run(main())
