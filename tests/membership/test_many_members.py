"""What a renewal answering many members costs the event loop: work in proportion to the
members, not to their square (20 000 rows another client wrote made each renewal take seconds
on the loop, and every replica fenced). Counted, not timed: how often two member ids are
compared for equality."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path

from reconciler.membership.base import Announcement, Member, Membership
from tests.controller.test_cluster import World

MANY = 500


class CountedId(str):
    """A member id that counts how often it is compared for equality."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        CountedId.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


@dataclasses.dataclass
class Crowded:
    """The members a real renewal answers, and many more others wrote, all renewed now."""

    inner: Membership
    world: World

    def renew(self, me: Announcement) -> list[Member]:
        now = self.world.clocks.now
        others = [
            Member(CountedId(f"z{n:04d}:1:z"), None, now - timedelta(seconds=1), now, "d")
            for n in range(MANY)
        ]
        return sorted([*self.inner.renew(me), *others], key=lambda m: m.id)

    @property
    def live_count(self) -> int:
        return self.inner.live_count + MANY

    @property
    def clock_offset(self) -> float | None:
        return self.inner.clock_offset

    def leave(self, me: Announcement) -> None:
        self.inner.leave(me)

    def close(self) -> None:
        pass


def test_a_renewal_with_many_members_compares_ids_in_proportion(tmp_path: Path) -> None:
    async def main() -> int:
        world = World(tmp_path)
        (replica,) = world.replicas("a")
        replica.cluster.membership = Crowded(replica.cluster.membership, world)
        CountedId.compared = 0
        assert await replica.step()
        assert len(replica.cluster.members) == MANY + 1
        assert len(replica.cluster._active) == MANY + 1  # tasks are assigned over them all
        return CountedId.compared

    compared = asyncio.run(main())
    # A member list searched once per member would compare MANY * MANY / 2 times.
    print("ids compared:", compared)
    assert compared < 20 * MANY, compared
