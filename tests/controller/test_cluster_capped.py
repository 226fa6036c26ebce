"""More members live than a renewal reads (``membership.base.Cap``): which ones it reads is
swayed by whoever writes records (own first, then those with a view, then the freshest), so two
replicas read different lists. Judged by its cut list, each took the other for gone, marked its
running runs ``interrupted`` and took every task. While the list is cut, no one is judged by it;
once the members fit, a replica that died meanwhile is noticed."""

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


def test_a_member_missing_from_a_cut_list_is_not_taken_for_gone(tmp_path: Path) -> None:
    async def main() -> None:
        world = capped_world(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        owned = {a.id: a.owned(), b.id: b.owned()}
        runs = {r.id: running_run(world, sorted(r.owned())[0], r.id) for r in (a, b)}
        junk = Junk(world, 3)
        for replica, other in ((a, b), (b, a)):
            world.clocks.advance(1)
            junk.renew()  # fresher than the other replica: each reads itself and junk only
            assert await replica.step()
            read = {m.id for m in replica.cluster.members}
            assert len(read) == MOST
            assert replica.id in read
            assert other.id not in read
            assert replica.cluster.live_count == 5  # a, b and the junk
            assert replica.owned() == owned[replica.id]  # no task moves
        assert {status(world, run) for run in runs.values()} == {RunStatus.RUNNING}
        assert_partition([a, b])
        (c,) = world.replicas("c")  # joins while the list is cut: nothing is its own
        assert await c.step()
        assert c.owned() == set()

    asyncio.run(main())


def test_once_the_members_fit_again_a_replica_that_died_meanwhile_is_noticed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.membership")

    async def main() -> None:
        world = capped_world(tmp_path)
        a, b = world.replicas("a", "b")
        await settle([a, b])
        owned = a.owned()
        run = running_run(world, sorted(b.owned())[0], b.id)
        junk = Junk(world, 3)
        for _ in range(9):  # b is killed: its record expires while the list is cut
            world.clocks.advance(2)
            junk.renew()
            assert await a.step()
        assert a.cluster.live_count == 4  # a and the junk: b's record has expired
        assert a.owned() == owned
        assert status(world, run) is RunStatus.RUNNING  # unknown: b may be live, unread
        junk.leave()
        assert await a.step()  # a and nobody else: the members fit
        assert a.cluster.live_count == 1
        assert status(world, run) is RunStatus.INTERRUPTED
        assert a.owned() == set(TASKS)

    asyncio.run(main())
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "renewal reads" in r.message]
    assert said == [  # said again only after a minute
        (
            logging.ERROR,
            "more members are live than a renewal reads: until they fit, none is taken for "
            "gone, no task moves, and a replica that joins, drains or dies meanwhile hands over "
            "nothing",
        )
    ]
    assert [r.levelno for r in caplog.records if "all read again" in r.message] == [logging.INFO]
