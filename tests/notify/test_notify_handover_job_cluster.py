"""The adopted Job run of ``test_notify_handover_job`` through the real dispatchers, cluster
and notifiers (the harness of ``test_notify_handover_cluster``): replica ``a`` runs a Job run
of a task when ``b`` joins and the task moves to ``b``; ``b``'s job housekeeping
(``controller.jobs.adopt_runs``, after every full pass) adopts the run while ``a`` still
follows its Job. The Job fails: both dispatchers record its end, and one ``failed`` is sent."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from reconciler.controller.jobs import adopt_runs
from reconciler.core.assignment import Assignment
from reconciler.core.desired import Definition
from reconciler.core.runs import JobDetails, RunRecord, Trigger
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction, ScriptedAttempt
from tests.controller.test_cluster import TASKS, World, settle
from tests.notify.test_notify_handover_cluster import FAILURE, looked_at, wired


class FollowJob:
    """``b``'s resumable action: follows the Job (an attempt the test ends)."""

    def __init__(self) -> None:
        self.attempts: list[ScriptedAttempt] = []

    def running(self, task: str) -> list[RunRecord]:
        return []

    def resume(self, record: RunRecord) -> ScriptedAttempt:
        attempt = ScriptedAttempt(record)
        self.attempts.append(attempt)
        return attempt

    def changed(self, definition: Definition, record: RunRecord) -> bool:
        return False


async def watched(namespace: str) -> None:
    """The Job watch of ``adopt_runs``: the twin has nothing to watch."""


def test_a_job_run_both_replicas_follow_is_told_once(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    world = World(folder)
    sent: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}

    async def main() -> None:
        a, b = world.replicas("a", "b")
        held = ScriptedAction()
        a.dispatcher.actions = Actions([held])
        follow = FollowJob()
        b.dispatcher.resumable = follow
        name = next(t for t in TASKS if Assignment([a.id, b.id], b.id).mine(f"default/{t}"))
        key = f"default/{name}"
        notifiers = {"a": wired(a, world, sent["a"]), "b": wired(b, world, sent["b"])}
        stop = asyncio.Event()
        components = [asyncio.create_task(n.run(lambda: None, stop)) for n in notifiers.values()]
        await settle([a])
        slot = a.cluster.reconciler.clock().replace(second=0)
        a.dispatcher.fire(a.scheduler.owned()[key], slot, Trigger.SCHEDULE)
        while not held.running():
            await asyncio.sleep(0)
        [going] = held.running()
        # The Job runner names its Job (progress), as for a real Job run.
        stored = world.store.get(going.record.id)
        assert stored is not None
        await a.dispatcher.progress(dataclasses.replace(stored, job=JobDetails("default", "j1")))
        await settle([a, b])  # b joins: the task moves to b; a's run goes on
        assert name in b.owned()
        assert name not in a.owned()
        assert await adopt_runs(b.dispatcher, world.store, b.reconciler, watched) == 1
        while not follow.attempts or not follow.attempts[0].started:
            await asyncio.sleep(0)
        # The Job fails: a's attempt and b's adopted one both see it end.
        going.finish(FAILURE)
        follow.attempts[0].finish(FAILURE)
        await a.dispatcher.drain(5)
        await b.dispatcher.drain(5)
        await looked_at(notifiers["a"], 1)
        await looked_at(notifiers["b"], 1)
        stop.set()  # delivers what is queued
        await asyncio.wait_for(asyncio.gather(*components), 20)
        assert sent == {"a": [], "b": [("failed", going.record.id)]}

    asyncio.run(main())
