"""A replica that joins (a scale-up, a rolling update's new pod) reading fewer tasks than the
others (a new version that drops some, a volume not mounted) is never handed the tasks it does
not declare: its first renewal already carries the view of what it read, so the others keep
them, and no slot of theirs is lost to a handover there and back. A member that publishes no
view at all (an older version) still counts as declaring every task."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path

import pytest

from reconciler.core.assignment import owner
from reconciler.membership.base import Announcement
from reconciler.sources.files import DirectorySource
from tests.controller.test_cluster import TASKS, Replica, World, settle
from tests.controller.test_reconcile import doc

EXTRA = [f"x{i}" for i in range(8)]  # read by a and b, not by c


def world_of_three(tmp_path: Path) -> tuple[World, Replica, Replica, Replica]:
    world = World(tmp_path)
    a, b, c = world.replicas("a", "b", "c")
    more = tmp_path.parent / f"{tmp_path.name}-more"
    more.mkdir()
    for name in EXTRA:
        (more / f"{name}.yaml").write_text(doc(name))
    a.source.roots = b.source.roots = [tmp_path, more]
    # Hashed over all three, some of these would be c's, which does not declare them.
    assert any(owner(f"default/{n}", [a.id, b.id, c.id]) == c.id for n in EXTRA)
    return world, a, b, c


def test_a_joining_replica_is_not_handed_tasks_it_does_not_read(tmp_path: Path) -> None:
    async def main() -> None:
        _, a, b, c = world_of_three(tmp_path)
        await settle([a, b])
        assert a.owned() | b.owned() == set(TASKS) | set(EXTRA)
        assert await c.cluster.tick()  # c joins; its first pass has not run yet
        moved: list[int] = []  # as a counts them: tasks whose owner changed, anyone's
        a.cluster.on_handover = moved.append
        await a.step()  # a and b see c, before c's first pass
        await b.step()
        for key in (f"default/{n}" for n in EXTRA):
            assert a.reconciler.owner(key) in (a.id, b.id), key
        assert a.owned() | b.owned() >= set(EXTRA)
        assert c.cluster.views.digest is not None  # its first renewal said what it read
        await c.reconciler.run_pass(None)
        await settle([a, b, c])
        assert not c.owned() & set(EXTRA)
        assert a.owned() | b.owned() | c.owned() == set(TASKS) | set(EXTRA)
        # Only tasks both views declare moved to c: no task of EXTRA went there and back.
        assert sum(moved) == len(c.owned())

    asyncio.run(main())


def test_a_member_that_publishes_no_view_counts_as_declaring_every_task(
    tmp_path: Path,
) -> None:
    """An older crontask (no view in its renewals) during a rolling update keeps its share."""

    async def main() -> None:
        world, a, b, c = world_of_three(tmp_path)
        await settle([a, b])
        world.registry.renew(Announcement(c.id))  # its renewal, with no digest
        await a.step()
        await b.step()
        hashed = {n for n in TASKS + EXTRA if owner(f"default/{n}", [a.id, b.id, c.id]) == c.id}
        assert hashed & set(EXTRA)
        assert a.owned() | b.owned() == (set(TASKS) | set(EXTRA)) - hashed

    asyncio.run(main())


class Unreadable(DirectorySource):
    """A source whose first read raises (a defect): the replica joins all the same."""

    failed = False

    def refresh(self, hints: Collection[str] | None = None) -> set[str]:
        if not self.failed:
            self.failed = True
            raise OSError("cannot read")
        return super().refresh(hints)


def test_a_replica_whose_first_read_fails_joins_without_a_view(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        _, a, b, c = world_of_three(tmp_path)
        c.source = Unreadable([tmp_path])
        c.reconciler.sources = [c.source]
        await settle([a, b])
        assert await c.cluster.tick()
        assert c.cluster.views.digest is None  # counts as declaring every task, as before
        assert "could not read the sources before joining" in caplog.text
        await c.reconciler.run_pass(None)  # the first pass reads them: the view follows
        assert await c.cluster.tick()
        assert c.cluster.views.digest is not None
        await settle([a, b, c])
        assert not c.owned() & set(EXTRA)
        assert a.owned() | b.owned() | c.owned() == set(TASKS) | set(EXTRA)

    asyncio.run(main())
