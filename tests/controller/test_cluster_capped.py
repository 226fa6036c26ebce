"""More members live than a renewal reads (``membership.base.Cap``): which ones it reads is
swayed by whoever writes records, so two replicas may read different lists. Judged by its cut
list, each took the other for gone, marked its running runs ``interrupted`` and took every task.
Then, judged by none, a replica that died or drained under such a flood kept its tasks: they ran
nowhere until the list fit again. Now each renewal reads the members it knows (those of its last
whole list) right after itself, and on a cut list judges by them only
(``core.assignment.assigned_over``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.membership.base import Announcement
from reconciler.membership.memory import MemoryMembership, Registry
from tests.controller.test_cluster import TASKS, World, assert_partition, settle
from tests.controller.test_cluster_sweep import running_run, status

MOST = 3


def capped_world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.registry = Registry(lambda: world.clocks.now, most=MOST)
    return world


class Junk:
    """Records another client of the service writes, each with a view, renewed on demand."""

    def __init__(self, world: World, count: int) -> None:
        self.registry = world.registry
        self.records = [Announcement(f"junk{n}:1:j", digest="x") for n in range(count)]

    def renew(self) -> None:
        for record in self.records:
            MemoryMembership(self.registry).renew(record)

    def leave(self) -> None:
        for record in self.records:
            self.registry.leave(record)


def test_a_known_member_is_read_before_fresher_records_and_keeps_its_tasks(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        world = capped_world(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        owned = {a.id: a.owned(), b.id: b.owned()}
        runs = {r.id: running_run(world, sorted(r.owned())[0], r.id) for r in (a, b)}
        junk = Junk(world, 3)
        for replica, other in ((a, b), (b, a)):
            world.clocks.advance(1)
            junk.renew()  # fresher than the other replica, and with a view
            assert await replica.step()
            read = {m.id for m in replica.cluster.members}
            assert len(read) == MOST
            assert {replica.id, other.id} <= read
            assert replica.cluster.live_count == 5  # a, b and the junk
            assert replica.owned() == owned[replica.id]  # no task moves
        assert {status(world, run) for run in runs.values()} == {RunStatus.RUNNING}
        assert_partition([a, b])
        (c,) = world.replicas("c")  # joins while the list is cut: it knows no one
        assert await c.step()
        assert c.owned() == set()
        for replica in (a, b):  # and no one knows it
            assert await replica.step()
        assert_partition([a, b])

    asyncio.run(main())


def test_a_known_member_that_dies_under_a_flood_hands_its_tasks_and_runs_over(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        world = capped_world(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        run = running_run(world, sorted(b.owned())[0], b.id)
        junk = Junk(world, 3)
        for _ in range(9):  # b is killed: its record expires while the list is cut
            world.clocks.advance(2)
            junk.renew()
            assert await a.step()
            assert a.cluster.live_count > MOST
        assert b.id not in {m.id for m in a.cluster.members}
        assert a.owned() == set(TASKS)  # nothing runs nowhere
        assert status(world, run) is RunStatus.INTERRUPTED
        junk.leave()

    asyncio.run(main())


def test_a_known_member_that_drains_under_a_flood_hands_its_tasks_over(tmp_path: Path) -> None:
    async def main() -> None:
        world = capped_world(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        run = running_run(world, sorted(b.owned())[0], b.id)
        junk = Junk(world, 3)
        junk.renew()
        b.stopping.set()
        assert await b.step()  # b drains: it schedules nothing
        assert b.owned() == set()
        world.clocks.advance(1)
        junk.renew()
        assert await a.step()
        assert a.cluster.live_count == 5
        assert a.owned() == set(TASKS)
        assert status(world, run) is RunStatus.RUNNING  # b is alive: its runs finish there

    asyncio.run(main())


def test_once_the_members_fit_again_a_replica_that_joined_meanwhile_takes_its_share(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.membership")

    async def main() -> None:
        world = capped_world(tmp_path)
        (a,) = world.replicas("a")
        await settle([a])
        junk = Junk(world, 3)
        junk.renew()
        (b,) = world.replicas("b")
        for replica in (a, b):
            assert await replica.step()
        assert (a.owned(), b.owned()) == (set(TASKS), set())
        for _ in range(10):
            world.clocks.advance(2)
            junk.renew()
            for replica in (a, b):
                assert await replica.step()
        junk.leave()
        await settle([a, b])
        assert a.owned()
        assert b.owned()
        assert_partition([a, b])

    asyncio.run(main())
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "renewal reads" in r.message]
    message = (
        "more members are live than a renewal reads: until they fit, the members read when "
        "they last did keep the tasks, and a replica that joins meanwhile takes none"
    )
    assert said == [(logging.ERROR, message)]  # the registry's cap: said once a minute
    assert [r.levelno for r in caplog.records if "all read again" in r.message] == [logging.INFO]
