"""A replica's membership does not wait on the runs table. What follows a renewal (dead
replicas' runs, stop requests, the tasks' last slots) reads ``runs``; a ``LOCK TABLE runs`` held
longer than the renew deadline used to hold the next renewal behind it, and every replica fenced
itself, then lapsed (its tasks handed away and back) though the members table was free."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.controller.cluster import Cluster
from reconciler.controller.queue import WorkQueue
from reconciler.membership.base import Announcement, Timing
from reconciler.store import open_store
from reconciler.store.members import SqlMembership, SqlViews
from reconciler.store.sql_schema import create_engine
from tests.controller.test_cluster import Replica, World

TIMING = Timing(renew_interval=0.3, renew_deadline=1.5, lease_seconds=2.0)


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    open_store(pg_url).close()
    engine = create_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_a_lock_on_runs_longer_than_the_lease_neither_fences_nor_lapses(
    tmp_path: Path, pg_url: str, engine: sa.Engine
) -> None:
    def since() -> object:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT since FROM members")).scalar_one()

    async def main() -> None:
        world = World(tmp_path)
        store = open_store(pg_url)
        # Replica hands the store to its dispatcher and handover, which take any RunStore.
        replica = Replica("a", tmp_path, store, world)  # type: ignore[arg-type]
        fenced: list[bool] = []
        cluster = replica.cluster = Cluster(
            Announcement(replica.id),
            SqlMembership(engine),
            SqlViews(engine),
            store=store,
            reconciler=replica.reconciler,
            dispatcher=replica.dispatcher,
            queue=WorkQueue(),
            stopping=replica.stopping,
            timing=TIMING,
            on_renewal=lambda members, disagreeing, fence, offset: fenced.append(fence),
        )
        try:
            assert await replica.step()
            joined = since()
            with engine.connect() as locker, locker.begin():
                locker.execute(sa.text("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE"))
                tick = asyncio.ensure_future(cluster.tick())
                waiting = sa.text(
                    "SELECT count(*) FROM pg_locks"
                    " WHERE NOT granted AND relation = 'runs'::regclass"
                )
                deadline = time.monotonic() + 10
                while not locker.execute(waiting).scalar_one():  # the renewal's follow-up waits
                    assert time.monotonic() < deadline
                    assert not tick.done()
                    await asyncio.sleep(0.05)
                # The outage under test: the lock is held longer than a lease.
                await asyncio.sleep(2 * TIMING.lease_seconds)
                assert not tick.done()  # still behind the lock
            assert await asyncio.wait_for(tick, 10)
            replica.dispatcher.fence()  # what a retry due asks first
            assert replica.dispatcher.paused is None
            assert await cluster.tick()
            assert True not in fenced
            assert since() == joined  # the record never expired: no lapse
        finally:
            store.close()

    asyncio.run(main())


def test_the_fence_reason_says_no_duration_that_stops_being_true(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        (replica,) = world.replicas("a")
        assert await replica.step()
        world.clocks.advance(10)  # the renew deadline
        replica.dispatcher.fence()
        world.clocks.advance(6)  # the fence is on for the whole outage
        assert replica.dispatcher.paused == "membership not renewed within 10s"

    asyncio.run(main())
