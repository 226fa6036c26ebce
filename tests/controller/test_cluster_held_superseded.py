"""A run held by the fence is superseded by the catch-up of a later slot, not the other way.

One replica claims a slot ahead (``Dispatcher.due``), then is paused past its renew deadline but
within its lease (SIGSTOP 12 s): its run is held by the fence, and the next slot, due while it
is fenced, is not started. When the renewal works again, the latest slot missed is caught up
(README: "the latest runs as a catchup, older ones become Superseded"): the held run, older,
is recorded ``Superseded`` and never starts; the catch-up is not skipped ConcurrencyForbid
against a run that has not started (found by a chaos test: the catch-up and the next slot were
skipped, and the held run started 12 s after its slot as a ``schedule`` run)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.runner.memory import SUCCESS, ScriptedAction
from tests.controller.test_cluster import World
from tests.controller.test_policies import until
from tests.controller.test_reconcile import doc

NAME = "t00"
KEY = f"default/{NAME}"


def test_the_held_run_is_superseded_and_the_catch_up_runs(tmp_path: Path) -> None:
    world = World(tmp_path)
    (tmp_path / f"{NAME}.yaml").write_text(doc(NAME, extra="  concurrencyPolicy: Forbid\n"))
    action = ScriptedAction(auto=SUCCESS)

    async def main() -> tuple[RunRecord | None, RunRecord | None]:
        (a,) = world.replicas("a")
        a.dispatcher.actions = Actions([action])
        for _ in range(10):  # 12:00:50
            world.clocks.advance(2)
            await a.step()
        ahead = world.clocks.now + timedelta(seconds=0.2)
        a.dispatcher.due(a.scheduler.owned()[KEY], ahead)
        await until(lambda: world.store.get(run_id(KEY, ahead)) is not None)  # claimed ahead
        world.clocks.advance(12)  # SIGSTOP ... SIGCONT: past the renew deadline, in the lease
        await until(lambda: a.dispatcher.paused is not None and bool(a.dispatcher.waiting(KEY)))
        due = [(k, at) for k, at in a.scheduler.advance(world.clocks.now) if k == KEY]
        ((_, slot),) = due  # 12:01:00, due while fenced: not started
        assert a.dispatcher.fire(a.scheduler.owned()[KEY], slot).reason == "NotStarted"
        assert await a.step()  # renewed: the fence lifts, the missed slot is caught up
        assert await a.dispatcher.drain(5)
        return world.store.get(run_id(KEY, ahead)), world.store.get(run_id(KEY, slot))

    held, caught_up = asyncio.run(main())
    assert held is not None
    assert caught_up is not None
    assert (held.status, held.reason, held.started_at) == (
        RunStatus.SKIPPED,
        "Superseded",
        None,
    )
    assert (caught_up.trigger, caught_up.status) == (
        Trigger.CATCHUP,
        RunStatus.SUCCEEDED,
    )
    # The held run never began its attempt; the catch-up did.
    assert [attempt.started for attempt in action.attempts] == [False, True]
