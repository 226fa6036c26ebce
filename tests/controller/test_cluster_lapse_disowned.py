"""A replica paused past its lease (SIGSTOP, a frozen VM) whose run another replica marked
``interrupted`` meanwhile: once it renews again, it stops that run and leaves its record as
the other wrote it (``controller.disowned``). A replica that renewed in time never does. On the
in-memory twins and the fake clocks of ``test_cluster`` (renew deadline 10 s, lease 15 s)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.controller.disowned import DISOWNED
from reconciler.controller.sweep import interrupt_gone
from reconciler.core.runs import PROCESS_DIED, RunRecord, RunStatus
from reconciler.runner.base import Actions, Outcome, failed
from reconciler.runner.memory import SUCCESS, ScriptedAction
from reconciler.store.base import RunQuery
from tests.controller.test_cluster import Replica, World, settle
from tests.controller.test_cluster_lapse import IDS, KEY, SLOT, a_records, world_with
from tests.controller.test_policies import until


async def running_on_a(a: Replica) -> tuple[ScriptedAction, list[RunRecord]]:
    """A run of KEY going on a, and the records a's listeners hear from now on."""
    heard: list[RunRecord] = []
    a.dispatcher.subscribe(heard.append)
    action = ScriptedAction()
    a.dispatcher.actions = Actions([action])
    a.dispatcher.fire(a.scheduler.owned()[KEY], SLOT)
    await until(lambda: len(action.running()) == 1)
    return action, heard


def a_run(world: World) -> RunRecord:
    (record,) = [r for r in world.store.query(RunQuery(task=KEY, limit=10)).items]
    assert record.owner == IDS["a"]
    return record


def said(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage() == DISOWNED for r in caplog.records)


def test_a_run_marked_during_the_lapse_is_stopped_and_its_record_left_as_marked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0}")

    async def main() -> RunRecord:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action, heard = await running_on_a(a)
        world.clocks.advance(20)  # a is paused past its lease (SIGSTOP, then SIGCONT)
        await b.step()  # a has expired: b marks its run interrupted and takes the task
        marked = a_run(world)
        assert marked.status is RunStatus.INTERRUPTED
        assert await a.step()
        assert action.attempts[0].stopped == "Disowned"  # its command is stopped
        assert await a.dispatcher.drain(5)
        assert await a.step()
        assert len(action.attempts) == 1  # not retried
        assert heard[-1] == marked  # its listeners hear the record that stands
        return marked

    marked = asyncio.run(main())
    assert a_run(world) == marked  # not written over
    assert a_records(world) == [(1, RunStatus.INTERRUPTED, PROCESS_DIED)]
    assert said(caplog) == 1  # once, not at each renewal


def test_a_run_marked_just_after_the_renewal_that_found_the_lapse_is_stopped_too(
    tmp_path: Path,
) -> None:
    """b read the members while a's membership had lapsed, and marks a's run only after a
    renewed again: a's next renewal, within a lease, finds it."""
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0}")

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action, _ = await running_on_a(a)
        world.clocks.advance(20)
        assert await a.step()  # lapsed; nothing marked yet: the run goes on
        assert len(action.running()) == 1
        interrupt_gone(world.store, IDS["b"], {IDS["b"]}, None, outlives=lambda r: False)
        world.clocks.advance(2)
        assert await a.step()
        assert action.attempts[0].stopped == "Disowned"
        assert await a.dispatcher.drain(5)

    asyncio.run(main())
    assert a_records(world) == [(1, RunStatus.INTERRUPTED, PROCESS_DIED)]


@pytest.mark.parametrize("lapsed", [False, True], ids=["slow", "window-over"])
def test_a_replica_that_renewed_in_time_keeps_its_run_whatever_its_record_says(
    tmp_path: Path, lapsed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Fenced but renewed within the lease (slow, not lapsed), or a lease after a lapse: the
    others judged it live, and a record that says otherwise does not stop its run. Its end
    is not written over that record though: the store keeps a mark (``save_many``)."""
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0}")

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action, _ = await running_on_a(a)
        if lapsed:
            world.clocks.advance(20)
            assert await a.step()
            for _ in range(8):  # renewals for 16 s: past the lease after the lapse
                world.clocks.advance(2)
                assert await a.step()
        else:
            world.clocks.advance(11)  # past the renew deadline, within the lease
        now = datetime.now(UTC)
        assert world.store.mark_interrupted([IDS["a"]], now)  # a record that says otherwise
        assert await a.step()
        assert len(action.running()) == 1  # its command goes on
        action.attempts[0].finish()
        assert await a.dispatcher.drain(5)

    asyncio.run(main())
    assert a_records(world) == [(1, RunStatus.INTERRUPTED, PROCESS_DIED)]
    assert said(caplog) == 0


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "unmarked"])
def test_a_command_that_ended_during_the_lapse_waits_for_the_renewal_to_be_recorded(
    tmp_path: Path, marked: bool
) -> None:
    """Its exit is heard as a resumes, before its renewal: the end waits for that renewal's
    look, and is not written over a record b marked; one nobody marked is written then."""
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0}")

    async def main() -> RunRecord | None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action, heard = await running_on_a(a)
        world.clocks.advance(20)  # a is paused past its lease; its command ends meanwhile
        if marked:
            await b.step()
        stored = a_run(world)
        action.attempts[0].finish()
        assert not await a.dispatcher.drain(0.2)  # its end waits for the renewal
        assert a_run(world) == stored
        assert await a.step()
        assert await a.dispatcher.drain(5)
        assert len(action.attempts) == 1
        return heard[-1]

    last = asyncio.run(main())
    if marked:
        assert a_records(world) == [(1, RunStatus.INTERRUPTED, PROCESS_DIED)]
        assert last == a_run(world)  # the listeners heard the record that stands
    else:
        assert a_records(world) == [(1, RunStatus.SUCCEEDED, None)]


def test_an_end_after_a_renewal_in_time_is_recorded_at_once(tmp_path: Path) -> None:
    """Fenced (past the renew deadline) but within the lease: nobody can have taken the run,
    and its end is written without waiting for a renewal."""
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0}")

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action, _ = await running_on_a(a)
        world.clocks.advance(11)
        action.attempts[0].finish()
        assert await a.dispatcher.drain(5)

    asyncio.run(main())
    assert a_records(world) == [(1, RunStatus.SUCCEEDED, None)]


def test_an_end_just_after_a_mark_from_a_stale_sweep_is_not_written_over_it(
    tmp_path: Path,
) -> None:
    """b read the members while a's membership had lapsed and marks a's run only after a
    renewed (and looked, finding nothing), and a's command ends before a's next renewal: its
    end is not held (a renewed in time) and reaches the store after the mark. The store keeps
    the mark (a save is not written over a record marked as its owner's gone)."""
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0}")

    async def main() -> None:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action, _ = await running_on_a(a)
        world.clocks.advance(20)
        assert await a.step()  # lapsed; looked: nothing marked yet
        interrupt_gone(world.store, IDS["b"], {IDS["b"]}, None, outlives=lambda r: False)
        action.attempts[0].finish()  # before a's next renewal looks again
        assert await a.dispatcher.drain(5)

    asyncio.run(main())
    assert a_records(world) == [(1, RunStatus.INTERRUPTED, PROCESS_DIED)]


@pytest.mark.parametrize("ends", [SUCCESS, failed("Error", "exit 1")], ids=["success", "retried"])
def test_an_end_that_lost_to_a_mark_is_heard_as_the_mark(tmp_path: Path, ends: Outcome) -> None:
    """The end of the test above reaches the store after b's mark, which stands: a's listeners
    (notifier, metrics, status) hear that record, as b's did, not the end the store left out
    (metrics would count the run twice, a notification say it succeeded)."""
    world = world_with(tmp_path, "{limit: 1, backoffSeconds: 0}")

    async def main() -> list[RunRecord]:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        action, heard = await running_on_a(a)
        world.clocks.advance(20)
        assert await a.step()
        interrupt_gone(world.store, IDS["b"], {IDS["b"]}, None, outlives=lambda r: False)
        action.attempts[0].finish(ends)  # a failure is not retried: the run is b's now
        assert await a.dispatcher.drain(5)
        assert len(action.attempts) == 1
        return heard

    heard = asyncio.run(main())
    assert [r.status for r in heard] == [RunStatus.RUNNING, RunStatus.INTERRUPTED]
    assert heard[-1] == a_run(world)
