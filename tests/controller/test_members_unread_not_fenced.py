"""``fenced`` in ``GET /api/v1/members`` (``Service.members``) is the renew deadline's fence only.
After a lapse the runs are held while the tasks' last slots cannot be read (``lapse.UNREAD``),
but the renewals work and the list is read anew at each: the answer said fenced all the same,
and ``crontask members`` that the replica had not renewed since the renewal just done."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import cast

from reconciler.controller.lapse import UNREAD
from reconciler.controller.service import Service
from reconciler.runner.base import Actions
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.sources.api import ApiSource, ApiTaskFiles
from reconciler.store.base import RunStore
from tests.controller.test_cluster import Replica, World, settle
from tests.controller.test_cluster_lapse_anchors import Unread
from tests.controller.test_cluster_lapse_recount import a_task
from tests.controller.test_cluster_unchecked import cut_off, fire_due
from tests.controller.test_reconcile import doc


def test_a_replica_renewing_while_the_slots_are_unread_is_not_said_fenced(tmp_path: Path) -> None:
    name = a_task("every")
    (tmp_path / f"{name}.yaml").write_text(doc(name, "@every 2s"))
    world = World(tmp_path)
    late: list[bool] = []
    seen: list[tuple[datetime | None, str | None, bool]] = []

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        view = service(a, world, tmp_path / "api")
        a.dispatcher.actions = Actions([ScriptedAction(auto=SUCCESS)])
        world.clocks.advance(2)
        await fire_due(a, world)
        assert await a.dispatcher.drain(5)
        cut = cut_off(a, world)
        cut.down = True
        world.registry.unreachable.add(a.id)
        for _ in range(4):
            world.clocks.advance(2)
            await fire_due(a, world)
            assert await a.dispatcher.drain(5)
        world.clocks.advance(12)
        assert not await a.step()  # past the renew deadline: fenced
        members = view.members()
        assert members is not None
        late.append(members.fenced)
        cut.down = False
        world.registry.unreachable.clear()
        a.cluster.store = cast(RunStore, Unread(a.cluster.store))
        await fire_due(a, world)
        for _ in range(3):
            assert await a.step()  # a renewal that worked; the slots still unread
            members = view.members()
            assert members is not None
            seen.append((members.listed_at, a.dispatcher.paused, members.fenced))
            world.clocks.advance(2)
            await fire_due(a, world)

    asyncio.run(main())
    assert late == [True]
    assert [paused for _, paused, _ in seen] == [UNREAD] * 3  # the runs are held meanwhile
    ats = [at for at, _, _ in seen if at is not None]
    assert len(ats) == 3
    assert ats[0] < ats[1] < ats[2]  # read anew at each renewal: the list is current
    assert [fenced for _, _, fenced in seen] == [False] * 3


def service(replica: Replica, world: World, api: Path) -> Service:
    """What answers ``/api/v1/members`` for ``replica``, as ``crontask run --ha`` builds it
    (``tests/api/test_members_live_total.service``, whose module needs the API's fixtures)."""
    return Service(
        loop=asyncio.get_running_loop(),
        store=world.store,
        scheduler=replica.scheduler,
        dispatcher=replica.dispatcher,
        reconciler=replica.reconciler,
        reconcile=replica.reconciler.run_pass,
        api=ApiSource(ApiTaskFiles(api)),
        cluster=replica.cluster,
    )
