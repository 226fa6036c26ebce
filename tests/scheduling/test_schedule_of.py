"""A definition's fire times: its schedule, zone and per-key jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.core.schedule import jitter_offset
from reconciler.scheduling.base import schedule_of
from tests.helpers import definition

T0 = datetime(2026, 11, 26, tzinfo=UTC)
# Past the 00:00 slot's jitter window (at most 10 minutes), so every next slot is 01:00 + offset.
T1 = datetime(2026, 11, 26, 0, 20, tzinfo=UTC)


def test_jitter_is_a_stable_per_key_offset_within_bounds() -> None:
    plain = schedule_of(definition("a", schedule="0 * * * *"))
    jittered = [
        schedule_of(definition(n, schedule="0 * * * *", jitterSeconds=600)) for n in "abcdef"
    ]
    offsets = {
        int((s.next_after(T1) - plain.next_after(T1)).total_seconds())  # type: ignore[operator]
        for s in jittered
    }
    assert all(0 <= o <= 600 for o in offsets)
    assert len(offsets) > 1  # tasks sharing a schedule are spread out
    a = jittered[0]
    assert a.next_after(T1) == plain.next_after(T1) + timedelta(  # type: ignore[operator]
        seconds=jitter_offset("default/a", 600)
    )
    # Same key, same offset: a new process computes the same slot.
    again = schedule_of(definition("a", schedule="0 * * * *", jitterSeconds=600))
    assert again.fire_times(T0, 5) == a.fire_times(T0, 5)
    assert "delayed by" in a.describe()


def test_zone_applies() -> None:
    berlin = schedule_of(definition("a", schedule="0 9 * * *", timeZone="Europe/Berlin"))
    assert berlin.next_after(T0) == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
