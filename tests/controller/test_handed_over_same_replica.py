"""A run that does not start because its replica's membership lapsed is recorded
``HandedOver``, as the others may have taken its task and run it meanwhile; but its record
does not say that the task moved to another replica when it is this replica's still (a lapse
with nobody else there: the store was silent past the lease). On the in-memory twins and
the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.store.base import RunQuery
from tests.controller.test_cluster import settle
from tests.controller.test_cluster_lapse import IDS, KEY, SLOT, world_with
from tests.controller.test_policies import FAILED, until


def retry_record(records: list[RunRecord]) -> RunRecord:
    (retry,) = [r for r in records if r.attempt == 2]
    return retry


def test_a_retry_not_started_across_a_lapse_does_not_say_its_task_moved(tmp_path: Path) -> None:
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0.2}")

    async def main() -> None:
        (a,) = world.replicas("a")
        await settle([a])
        action = ScriptedAction()
        a.dispatcher.actions = Actions([action])
        a.dispatcher.fire(a.scheduler.owned()[KEY], SLOT)
        await until(lambda: len(action.running()) == 1)
        action.attempts[0].finish(FAILED)
        await until(lambda: bool(a.dispatcher.waiting(KEY)))  # its backoff
        world.clocks.advance(20)  # past its lease: nobody else is there to take the task
        await until(lambda: a.dispatcher.paused is not None and bool(a.dispatcher.waiting(KEY)))
        assert await a.step()  # lapsed: its tasks are handled as handed away and back
        assert KEY.partition("/")[2] in a.owned()  # the task is a's, before and after
        assert await a.dispatcher.drain(5)
        assert len(action.attempts) == 1

    asyncio.run(main())
    records = world.store.query(RunQuery(task=KEY, limit=10)).items
    retry = retry_record([r for r in records if r.owner == IDS["a"]])
    assert (retry.status, retry.reason) == (RunStatus.SKIPPED, "HandedOver")
    assert retry.message == (
        "this replica's membership lapsed (another replica may have run the task meanwhile) "
        "before this retry could start; it did not start"
    )
