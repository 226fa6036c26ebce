"""The APScheduler adapter after the wall clock stepped forward (an NTP step, or a host resumed
from suspend, during which the monotonic clock stood still): its timer counts on the monotonic
clock, so a slot it waited an hour for came an hour late unless it looks at the wall clock
again meanwhile (``WAKE_MAX``)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, tzinfo
from types import SimpleNamespace
from typing import Self

import apscheduler.schedulers.base as aps_base
import pytest

import reconciler.scheduling.apscheduler as adapter
from reconciler.core.plan import Operation, Step
from tests.helpers import definition

_STEP = [0.0]  # how far the fake wall clock is ahead of the real one, in seconds


class _Wall(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Self:
        return cls.fromtimestamp(time.time() + _STEP[0], tz)


def test_wake_max_is_a_few_seconds() -> None:
    assert 0 < adapter.WAKE_MAX <= 5


def test_a_slot_comes_when_due_after_the_wall_clock_stepped_forward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _STEP[0] = 0.0
    monkeypatch.setattr(adapter, "datetime", _Wall)
    monkeypatch.setattr(aps_base, "datetime", _Wall)
    monkeypatch.setattr(
        adapter, "time", SimpleNamespace(time=lambda: time.time() + _STEP[0], sleep=time.sleep)
    )
    # The real bound is a few seconds; a shorter one keeps the test short.
    monkeypatch.setattr(adapter, "WAKE_MAX", 0.2, raising=False)

    async def main() -> list[tuple[str, datetime]]:
        fired: list[tuple[str, datetime]] = []
        came = asyncio.Event()

        def on_fire(key: str, at: datetime) -> None:
            fired.append((key, at))
            came.set()

        scheduler = adapter.ApsScheduler(on_fire)
        slot = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        daily = definition("daily", schedule=f"{slot.second} {slot.minute} {slot.hour} * * *")
        scheduler.start()
        try:
            scheduler.apply(Step(Operation.ADD, daily.key, daily, None))
            await asyncio.sleep(0.3)  # the scheduler waits for the slot an hour ahead
            assert scheduler.next_fire_time(daily.key) == slot
            # The wall clock steps to half a second before the slot.
            _STEP[0] = (slot - datetime.now(UTC)).total_seconds() - 0.5
            await asyncio.wait_for(came.wait(), 5)
        finally:
            scheduler.shutdown()
        assert fired == [(daily.key, slot)]
        return fired

    asyncio.run(main())
