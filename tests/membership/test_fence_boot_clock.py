"""The fence's clock counts the time a host spends suspended. The others judge this replica's
record by the database's clock (or their own), which went on while it slept: a replica whose
host slept past its renew deadline must not start runs before a renewal says what is still its
own. ``time.monotonic`` stops during a suspend on Linux; CLOCK_BOOTTIME does not. The suspend
is the boot clock moved by hand."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from reconciler.controller.cluster import Cluster
from reconciler.controller.queue import WorkQueue
from reconciler.membership.base import Announcement, Timing
from reconciler.membership.memory import MemoryMembership
from tests.controller.test_cluster import World

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="CLOCK_BOOTTIME is Linux's")


def test_a_replica_whose_host_slept_past_its_deadline_is_fenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boot = [5000.0]
    real = time.clock_gettime

    def clock_gettime(clock: int) -> float:
        return boot[0] if clock == time.CLOCK_BOOTTIME else real(clock)

    monkeypatch.setattr(time, "clock_gettime", clock_gettime)

    async def main() -> None:
        world = World(tmp_path)
        (replica,) = world.replicas("a")
        replica.cluster = Cluster(  # the clock crontask runs with: the default one
            Announcement(replica.id),
            MemoryMembership(world.registry),
            world.views,
            store=world.store,
            reconciler=replica.reconciler,
            dispatcher=replica.dispatcher,
            queue=WorkQueue(),
            stopping=replica.stopping,
            timing=Timing(renew_interval=2, renew_deadline=10, lease_seconds=15),
        )
        assert await replica.step()
        replica.dispatcher.fence()  # what a retry due asks first
        assert replica.dispatcher.paused is None
        boot[0] += 60  # the host slept a minute
        replica.dispatcher.fence()
        assert replica.dispatcher.paused is not None
        assert await replica.step()  # renewed: what is still ours is known again
        assert replica.dispatcher.paused is None

    asyncio.run(main())
