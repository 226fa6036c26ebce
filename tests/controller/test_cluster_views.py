"""Replicas that read different definitions (a volume mounted on one only, a git fetch behind,
a rolling update that adds a task): a task only some replicas declare is scheduled by one of
them, never by a replica that does not declare it (where it would run nowhere)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reconciler.core.assignment import owner
from tests.controller.test_cluster import TASKS, Replica, World, settle
from tests.controller.test_reconcile import doc

EXTRA = [f"x{i}" for i in range(8)]  # declared by b only


def two_replicas(tmp_path: Path) -> tuple[Replica, Replica]:
    world = World(tmp_path)
    a, b = world.replicas("a", "b")
    more = tmp_path.parent / f"{tmp_path.name}-b"
    more.mkdir()
    for name in EXTRA:
        (more / f"{name}.yaml").write_text(doc(name))
    b.source.roots = [tmp_path, more]
    # Hashed over both, some of these would be a's, which does not declare them.
    assert any(owner(f"default/{name}", [a.id, b.id]) == a.id for name in EXTRA)
    return a, b


def test_a_task_only_some_replicas_declare_is_scheduled_by_one_of_them(tmp_path: Path) -> None:
    async def main() -> None:
        a, b = two_replicas(tmp_path)
        await settle([a, b])
        await a.step()  # a sees the view b published last
        assert set(EXTRA) <= b.owned()
        assert not a.owned() & set(EXTRA)
        assert a.owned() | b.owned() == set(TASKS) | set(EXTRA)
        assert not a.owned() & b.owned()
        assert a.owned()  # the tasks both declare are still shared
        for key in (f"default/{name}" for name in [*TASKS, *EXTRA]):  # both say the same
            assert a.reconciler.owner(key) == b.reconciler.owner(key)

    asyncio.run(main())


def test_once_every_replica_reads_a_task_it_goes_by_the_hash_again(tmp_path: Path) -> None:
    """The views agree again (a's volume mounted, its git fetch caught up): every task goes
    where rendezvous hashing over the members puts it."""

    async def main() -> None:
        a, b = two_replicas(tmp_path)
        await settle([a, b])
        await a.step()
        a.source.roots = b.source.roots
        await settle([a, b])
        await a.step()
        for name in [*TASKS, *EXTRA]:
            hashed = owner(f"default/{name}", [a.id, b.id])
            assert name in (a if hashed == a.id else b).owned()

    asyncio.run(main())
