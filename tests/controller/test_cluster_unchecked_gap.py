"""The slots of an every-second task not started while the run store is silent (their claims
cannot be checked) are one gap, recorded once: as one ``Superseded`` record when the store
answers, or counted by the catch-up after a lapse; not one record a slot. On the in-memory
twins and the fake clocks of ``test_cluster``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store.base import RunQuery
from tests.controller.test_cluster import T0, World, settle
from tests.controller.test_cluster_unchecked import cut_off, fire_due
from tests.controller.test_reconcile import doc

NAMES = {"s0": "Allow", "s1": "Replace"}


def every_second(world: World) -> None:
    """The world's tasks are two every-second ones instead of its minute ones."""
    for path in world.folder.glob("*.yaml"):
        path.unlink()
    for name, policy in NAMES.items():
        extra = f"  concurrencyPolicy: {policy}\n"
        (world.folder / f"{name}.yaml").write_text(doc(name, "* * * * * *", extra))


def records_of(world: World, name: str) -> list[RunRecord]:
    found = world.store.query(RunQuery(task=f"default/{name}", limit=1000)).items
    return sorted(found, key=lambda r: r.scheduled_at)


def at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def outage(world: World, seconds: int) -> None:
    """The run store is silent for replica a from just before T0+1 s to T0+``seconds``: each
    slot is handed over as it comes due; then it answers, and a renews."""
    (a,) = world.replicas("a")
    await settle([a])
    cut = cut_off(a, world)
    cut.down = True
    for _ in range(seconds):
        world.clocks.advance(1)
        await fire_due(a, world)
        assert await a.dispatcher.drain(5)  # every claim answered (unchecked) before the next
    world.clocks.advance(0.5)
    cut.down = False
    assert await a.step()
    assert await a.dispatcher.drain(5)
    assert await a.dispatcher.recorder.flush(5)


def test_slots_unchecked_within_the_renew_deadline_are_one_superseded_record(
    tmp_path: Path,
) -> None:
    """Six slots (12:00:31..36) not started, the store back before the renew deadline: the
    latest runs as the catch-up, the five before it are one record (they were five)."""
    world = World(tmp_path)
    every_second(world)
    asyncio.run(outage(world, 6))
    for name in NAMES:
        records = records_of(world, name)
        skipped = [r for r in records if r.status is RunStatus.SKIPPED]
        assert [(r.reason, r.scheduled_at, r.owner) for r in skipped] == [
            ("Superseded", T0 + timedelta(seconds=5), "a:1:a")
        ]
        assert (skipped[0].message or "").startswith(
            f"5 slots after {at(0)[:-1]}.999999Z and before {at(6)} did not run"
        )
        ran = [(r.id, r.trigger, r.status) for r in records if r.status is not RunStatus.SKIPPED]
        slot = T0 + timedelta(seconds=6)
        assert ran == [(run_id(f"default/{name}", slot), Trigger.CATCHUP, RunStatus.SUCCEEDED)]


def test_slots_unchecked_then_fenced_are_counted_once_by_the_lapse_catch_up(
    tmp_path: Path,
) -> None:
    """Past the lease: the slots unchecked before the renew deadline (12:00:31..39) and those
    fenced after it are all counted by the one catch-up after the lapse, none in a record of
    its own besides."""
    world = World(tmp_path)
    every_second(world)
    asyncio.run(outage(world, 20))
    for name in NAMES:
        records = records_of(world, name)
        skipped = [r for r in records if r.status is RunStatus.SKIPPED]
        assert [(r.reason, r.scheduled_at) for r in skipped] == [
            ("Superseded", T0 + timedelta(seconds=19))
        ]
        assert (skipped[0].message or "").startswith("19 slots after "), skipped[0].message
        assert f"and before {at(20)} did not run" in (skipped[0].message or "")
        ran = [(r.scheduled_at, r.trigger, r.status) for r in records if r not in skipped]
        slot = T0 + timedelta(seconds=20)
        assert ran == [(slot, Trigger.CATCHUP, RunStatus.SUCCEEDED)]


def test_a_slot_claimed_after_the_gap_ends_it_and_the_gap_is_one_record(tmp_path: Path) -> None:
    """The store answers the claim of the next slot (12:00:35) before any renewal: that slot
    runs, and the four before it, unchecked, are one record once the renewal comes."""
    world = World(tmp_path)
    every_second(world)

    async def main() -> None:
        (a,) = world.replicas("a")
        await settle([a])
        cut = cut_off(a, world)
        cut.down = True
        for _ in range(4):
            world.clocks.advance(1)
            await fire_due(a, world)
            assert await a.dispatcher.drain(5)
        cut.down = False
        world.clocks.advance(1)
        await fire_due(a, world)
        assert await a.dispatcher.drain(5)
        world.clocks.advance(0.5)
        assert await a.step()
        assert await a.dispatcher.drain(5)
        assert await a.dispatcher.recorder.flush(5)

    asyncio.run(main())
    for name in NAMES:
        records = records_of(world, name)
        assert [(r.scheduled_at, r.trigger, r.status, r.reason) for r in records] == [
            (T0 + timedelta(seconds=4), Trigger.SCHEDULE, RunStatus.SKIPPED, "Superseded"),
            (T0 + timedelta(seconds=5), Trigger.SCHEDULE, RunStatus.SUCCEEDED, None),
        ]
        assert records[0].message == (
            f"4 slots after {at(0)[:-1]}.999999Z and before {at(5)} did not run (their claims"
            " could not be checked: the run store did not answer); only the latest missed slot"
            " may run"
        )
