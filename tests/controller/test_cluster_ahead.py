"""A replica paused (SIGSTOP, a frozen VM) between the claim of a slot, written ahead of it
(``Dispatcher.due``), and the slot: when it runs again, that run must not start on its old
decision. The fence holds it, as a retry, until a renewal says what is still this replica's;
a membership that lapsed meanwhile hands it over, and a record the task's new owner ended
stays as it wrote it. On the in-memory twins and the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.core.assignment import Assignment
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.runner.base import Actions
from reconciler.runner.memory import SUCCESS, ScriptedAction
from tests.controller.test_cluster import TASKS, Replica, World, settle
from tests.controller.test_policies import until
from tests.controller.test_reconcile import doc

IDS = {name: f"{name}:1:{name}" for name in "ab"}
# A task of a's while a and b are members.
KEY = next(
    f"default/{t}" for t in TASKS if Assignment(list(IDS.values()), IDS["a"]).mine(f"default/{t}")
)
NAME = KEY.partition("/")[2]

Scenario = Callable[[World, Replica, Replica, ScriptedAction], Awaitable[None]]


def play(tmp_path: Path, extra: str, paused: Scenario) -> tuple[RunRecord | None, list[bool]]:
    """a claims a slot of its task 0.2 s ahead, then ``paused`` plays what happens while it
    waits for the slot and after; the slot's record, and whether each attempt of a's began."""
    world = World(tmp_path)
    (tmp_path / f"{NAME}.yaml").write_text(doc(NAME, extra=f"  concurrencyPolicy: Forbid\n{extra}"))

    async def main() -> datetime:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        assert NAME in a.owned()
        action = ScriptedAction(auto=SUCCESS)
        a.dispatcher.actions = Actions([action])
        slot = world.clocks.now + timedelta(seconds=0.2)
        a.dispatcher.due(a.scheduler.owned()[KEY], slot)
        await until(lambda: world.store.get(run_id(KEY, slot)) is not None)  # claimed ahead
        await paused(world, a, b, action)
        assert await a.dispatcher.drain(5)
        began.extend(attempt.started for attempt in action.attempts)
        return slot

    began: list[bool] = []
    slot = asyncio.run(main())
    return world.store.get(run_id(KEY, slot)), began


async def held(a: Replica) -> None:
    """Its slot has come: the fence holds its run (a's renew deadline has passed)."""
    await until(lambda: a.dispatcher.paused is not None and bool(a.dispatcher.waiting(KEY)))


def test_a_run_claimed_ahead_by_a_replica_paused_past_its_lease_does_not_start(
    tmp_path: Path,
) -> None:
    """a is paused 20 s (its lease is 15 s); b takes the task over and marks a's claim
    interrupted. a runs again: its run is held, then handed over; b's record stays."""

    async def paused(world: World, a: Replica, b: Replica, action: ScriptedAction) -> None:
        world.clocks.advance(20)  # SIGSTOP ... SIGCONT
        await b.step()
        assert NAME in b.owned()
        await held(a)
        assert await a.step()  # its membership had lapsed: its tasks are handed back
        assert a.dispatcher.paused is None

    record, began = play(tmp_path, "", paused)
    assert began == [False]
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.INTERRUPTED, "ProcessDied")


def test_a_run_claimed_ahead_through_a_lapse_nobody_saw_is_recorded_handed_over(
    tmp_path: Path,
) -> None:
    """The same lapse, and b did not look meanwhile: a's claim is still a's, and its record
    says why it never started."""

    async def paused(world: World, a: Replica, b: Replica, action: ScriptedAction) -> None:
        world.clocks.advance(20)
        await held(a)
        assert await a.step()

    record, began = play(tmp_path, "", paused)
    assert began == [False]
    assert record is not None
    assert (record.status, record.reason, record.owner) == (
        RunStatus.SKIPPED,
        "HandedOver",
        IDS["a"],
    )
    assert "before this run could start; it did not start" in (record.message or "")


def test_a_run_claimed_ahead_and_fenced_within_the_lease_starts_once_renewed(
    tmp_path: Path,
) -> None:
    """Paused 11 s: past the renew deadline (10 s), within the lease (15 s). Nobody could
    take the task: the run waits for the renewal, then starts."""

    async def paused(world: World, a: Replica, b: Replica, action: ScriptedAction) -> None:
        world.clocks.advance(11)
        await held(a)
        assert not any(attempt.started for attempt in action.attempts)
        assert await a.step()

    record, began = play(tmp_path, "", paused)
    assert began == [True]
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED


def test_a_run_held_by_the_fence_past_its_deadline_is_skipped(tmp_path: Path) -> None:
    async def paused(world: World, a: Replica, b: Replica, action: ScriptedAction) -> None:
        world.clocks.advance(11)
        await held(a)
        assert await a.step()

    record, began = play(tmp_path, "  startingDeadlineSeconds: 5\n", paused)
    assert began == [False]
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, "MissedDeadline")
