"""``Scheduler.snapshot``: every owned task with the next slot the scheduler holds and the
length of its current interval, the same from the APScheduler adapter and its fake-clock twin,
and safe to read from another thread."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

from reconciler.core.plan import Operation, Step
from reconciler.scheduling.apscheduler import ApsScheduler, _ScheduleTrigger
from reconciler.scheduling.base import Scheduled, schedule_of
from reconciler.scheduling.memory import MemoryScheduler
from tests.helpers import definition

WEEKDAYS = "0 9 * * 1-5"  # 09:00 UTC, Monday to Friday
THURSDAY = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
FRIDAY_9 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TUESDAY_9 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY = 86400.0


def test_the_twin_reports_the_next_slot_and_the_current_interval() -> None:
    job = definition("job", schedule=WEEKDAYS)
    scheduler = MemoryScheduler(lambda key, at: None, THURSDAY)
    scheduler.start()
    scheduler.apply(Step(Operation.ADD, job.key, job, None))
    # Before its first slot: from the next slot to the one after (Friday to Monday).
    assert scheduler.snapshot() == {job.key: Scheduled(job, FRIDAY_9, 3 * DAY)}
    scheduler.advance(FRIDAY_9)
    # Over the weekend: from the slot that fired to the next one.
    assert scheduler.snapshot()[job.key][1:] == (MONDAY_9, 3 * DAY)
    scheduler.advance(MONDAY_9)
    assert scheduler.snapshot()[job.key][1:] == (TUESDAY_9, DAY)
    paused = definition("job", schedule=WEEKDAYS, suspend=True)
    scheduler.apply(Step(Operation.UPDATE, job.key, paused, job))
    assert scheduler.snapshot() == {job.key: Scheduled(paused, None, None)}
    scheduler.apply(Step(Operation.REMOVE, job.key, None, paused))
    assert scheduler.snapshot() == {}


def test_the_trigger_keeps_what_apscheduler_was_told() -> None:
    # The adapter's snapshot reads the trigger: its last answer, and the slot it followed.
    trigger = _ScheduleTrigger(schedule_of(definition("job", schedule=WEEKDAYS)))
    assert trigger.slots() == (None, None)  # never asked: a suspended job, or not started
    assert trigger.get_next_fire_time(None, THURSDAY) == FRIDAY_9
    assert trigger.slots() == (FRIDAY_9, 3 * DAY)
    assert trigger.get_next_fire_time(FRIDAY_9, FRIDAY_9) == MONDAY_9
    assert trigger.slots() == (MONDAY_9, 3 * DAY)
    assert trigger.get_next_fire_time(FRIDAY_9, FRIDAY_9) == MONDAY_9  # asked again: cached
    assert trigger.get_next_fire_time(MONDAY_9, MONDAY_9) == TUESDAY_9
    assert trigger.slots() == (TUESDAY_9, DAY)


def test_the_adapter_snapshot_is_what_apscheduler_holds() -> None:
    every_second = definition("tick", schedule="* * * * * *")
    yearly = definition("yearly", schedule="0 0 1 1 *")
    paused = definition("paused", suspend=True)

    async def main() -> None:
        fired = asyncio.Event()
        scheduler = ApsScheduler(lambda key, at: fired.set() if key == every_second.key else None)
        for d in (every_second, yearly, paused):
            scheduler.apply(Step(Operation.ADD, d.key, d, None))
        assert {k: s.next_fire for k, s in scheduler.snapshot().items()} == dict.fromkeys(
            (every_second.key, yearly.key, paused.key)
        )  # not started: no job has a fire time yet
        scheduler.start()
        try:
            await asyncio.wait_for(fired.wait(), 5)
            await asyncio.sleep(0)  # APScheduler stores the next run time after the hand-off
            found = scheduler.snapshot()
            for key, scheduled in found.items():
                assert scheduled.next_fire == scheduler.next_fire_time(key), key
            assert found[every_second.key].definition is every_second
            assert found[every_second.key].interval == 1.0
            year = found[yearly.key].interval
            assert year is not None
            assert year in (365 * DAY, 366 * DAY)
            assert found[paused.key][1:] == (None, None)
            scheduler.apply(Step(Operation.REMOVE, yearly.key, None, yearly))
            assert yearly.key not in scheduler.snapshot()
        finally:
            scheduler.shutdown()

    asyncio.run(main())


def test_the_adapter_snapshot_can_be_read_while_the_loop_applies() -> None:
    definitions = [definition(f"t{i}", schedule="0 0 1 1 *") for i in range(2000)]
    errors: list[BaseException] = []
    seen: list[int] = []
    stop = threading.Event()

    async def main() -> None:
        scheduler = ApsScheduler(lambda key, at: None)
        scheduler.start()

        def read() -> None:
            try:
                while not stop.is_set():
                    found = scheduler.snapshot()
                    assert all(s.definition.key == key for key, s in found.items())
                    seen.append(len(found))
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for _ in range(3):
                for d in definitions:
                    scheduler.apply(Step(Operation.ADD, d.key, d, None))
                    if d.key.endswith("00"):
                        await asyncio.sleep(0)  # let the reader in now and then
                for d in definitions:
                    scheduler.apply(Step(Operation.REMOVE, d.key, None, d))
        finally:
            stop.set()
            reader.join(10)
            scheduler.shutdown()

    asyncio.run(main())
    assert not errors
    assert seen
    assert max(seen) <= len(definitions)


def test_interval_spans_a_daylight_saving_change_in_real_seconds() -> None:
    # 02:30 daily in Berlin; the clocks go back on 2026-10-25, so the day after is 25 h long.
    job = definition("night", schedule="30 2 * * *", timeZone="Europe/Berlin")
    saturday = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    sunday_slot = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    scheduler = MemoryScheduler(lambda key, at: None, saturday)
    scheduler.apply(Step(Operation.ADD, job.key, job, None))
    assert scheduler.snapshot()[job.key].interval == DAY + 3600  # Sunday to Monday
    scheduler.advance(sunday_slot)
    assert scheduler.snapshot()[job.key].interval == DAY + 3600  # still the long day
    scheduler.advance(sunday_slot + timedelta(days=1, hours=1))  # Monday 02:30 CET
    assert scheduler.snapshot()[job.key].interval == DAY
    trigger = _ScheduleTrigger(schedule_of(job))
    assert trigger.get_next_fire_time(None, saturday) == sunday_slot
    assert trigger.slots() == (sunday_slot, DAY + 3600)
