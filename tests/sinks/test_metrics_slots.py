"""``reconciler.sinks.metrics_slots``: each task's slot before its latest one, the series that
``CrontaskTaskNoRecentSuccess`` compares the last success with: right over uneven slots (a
weekday schedule on Monday, twice a day, a month), after a restart (when the scheduler's
interval is the one after the next slot), with jitter; kept from scrape to scrape without slot
arithmetic while the task's slots come one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.schedule import jitter_offset, parse_schedule
from reconciler.sinks import metrics_slots
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.sinks.metrics_slots import SlotsBeforeLast, latest_two
from tests.helpers import definition

MON_0900 = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
NOW = MON_0900.timestamp()  # when a read is made (what it changes: test_metrics_slots_changed)


def ts(at: datetime) -> float:
    return at.timestamp()


@pytest.mark.parametrize(
    ("schedule", "following", "interval", "latest", "before"),
    [
        # the scheduler's interval after Monday's slot: Monday's to Tuesday's
        ("0 9 * * 1-5", MON_0900 + DAY, DAY, MON_0900, MON_0900 - 3 * DAY),
        # after a restart on Saturday: the interval is the one after the next slot (a day)
        ("0 9 * * 1-5", MON_0900, DAY, MON_0900 - 3 * DAY, MON_0900 - 4 * DAY),
        # 09:00, after the night: the slot before last is yesterday's 10:00
        ("0 9,10 * * *", MON_0900 + timedelta(hours=1), timedelta(hours=1), MON_0900,
         MON_0900 - timedelta(hours=23)),
        ("*/5 * * * *", MON_0900, timedelta(minutes=5), MON_0900 - timedelta(minutes=5),
         MON_0900 - timedelta(minutes=10)),
        ("0 9 1 * *", datetime(2026, 4, 1, 9, tzinfo=UTC), timedelta(days=31),
         datetime(2026, 3, 1, 9, tzinfo=UTC), datetime(2026, 2, 1, 9, tzinfo=UTC)),
        ("@every 90s", datetime.fromtimestamp(90 * 20_000_000, UTC), timedelta(seconds=90),
         datetime.fromtimestamp(90 * 19_999_999, UTC),
         datetime.fromtimestamp(90 * 19_999_998, UTC)),
        # no interval known: the search alone
        ("0 9 * * 1-5", MON_0900 + DAY, None, MON_0900, MON_0900 - 3 * DAY),
    ],
)  # fmt: skip
def test_the_latest_slot_and_the_one_before(
    schedule: str,
    following: datetime,
    interval: timedelta | None,
    latest: datetime,
    before: datetime,
) -> None:
    seconds = None if interval is None else interval.total_seconds()
    found = latest_two(parse_schedule(schedule), ts(following), seconds)
    assert found == (ts(latest), ts(before))


def test_across_a_clock_change_the_slots_are_instants() -> None:
    """Europe/Berlin springs forward on 29 March 2026: 09:00 local is 08:00 UTC before, 07:00
    UTC after; the slots are real instants, not a day apart."""
    berlin = parse_schedule("0 9 * * *", "Europe/Berlin")
    following = datetime(2026, 3, 30, 7, tzinfo=UTC)
    found = latest_two(berlin, ts(following), DAY.total_seconds())
    assert found == (
        ts(datetime(2026, 3, 29, 7, tzinfo=UTC)),
        ts(datetime(2026, 3, 28, 8, tzinfo=UTC)),
    )


def test_rare_slots_are_found_however_far_back() -> None:
    leap = parse_schedule("0 0 29 2 *")
    following = ts(datetime(2028, 2, 29, tzinfo=UTC))
    found = latest_two(leap, following, None)
    assert found == (ts(datetime(2024, 2, 29, tzinfo=UTC)), ts(datetime(2020, 2, 29, tzinfo=UTC)))
    # 2100 is no leap year: eight years from 2096 to 2104, and 2108 is next
    found = latest_two(leap, ts(datetime(2108, 2, 29, tzinfo=UTC)), None)
    assert found == (ts(datetime(2104, 2, 29, tzinfo=UTC)), ts(datetime(2096, 2, 29, tzinfo=UTC)))
    yearly = parse_schedule("@every 8760h")
    year = 8760 * 3600.0
    assert latest_two(yearly, 2 * year, year) == (year, 0.0)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The next slots that slot arithmetic was done for."""
    calls: list[float] = []

    def counting(*args: object) -> tuple[float | None, float | None]:
        calls.append(args[1])  # type: ignore[arg-type]
        return latest_two(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(metrics_slots, "latest_two", counting)
    return calls


def test_kept_from_scrape_to_scrape_as_the_slots_come(counted: list[float]) -> None:
    weekday = definition("report", schedule="0 9 * * 1-5")
    tasks = MemoryTasks()
    slots = SlotsBeforeLast()
    # Started on Saturday: the interval is the one after the next slot.
    tasks.set(weekday, MON_0900, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), NOW) == {"default/report": ts(MON_0900 - 4 * DAY)}
    assert slots.read(tasks.snapshot(), NOW) == {"default/report": ts(MON_0900 - 4 * DAY)}
    assert counted == [ts(MON_0900)]
    # Monday's slot came and was handed off: Friday's is the slot before last, Thursday's no
    # more, and no arithmetic was needed.
    tasks.set(weekday, MON_0900 + DAY, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), NOW) == {"default/report": ts(MON_0900 - 3 * DAY)}
    tasks.set(weekday, MON_0900 + 2 * DAY, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), NOW) == {"default/report": ts(MON_0900)}
    assert counted == [ts(MON_0900)]
    # Two slots between two scrapes (the loop was blocked, or a task every few seconds): the
    # arithmetic again.
    tasks.set(weekday, MON_0900 + 4 * DAY, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), NOW) == {"default/report": ts(MON_0900 + 2 * DAY)}
    assert counted == [ts(MON_0900), ts(MON_0900 + 4 * DAY)]


def test_a_changed_schedule_is_worked_out_again() -> None:
    """Once two slots have come under it (before, the slots were not the task's:
    ``test_metrics_slots_changed``)."""
    tasks = MemoryTasks()
    slots = SlotsBeforeLast()
    tasks.set(definition("report", schedule="0 9 * * 1-5"), MON_0900 + DAY, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), NOW) == {"default/report": ts(MON_0900 - 3 * DAY)}
    tasks.set(definition("report", schedule="0 9 * * *"), MON_0900 + DAY, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), NOW) == {}
    sunday = MON_0900 + 6 * DAY  # no weekday: the daily schedule's slot before last, Friday's
    tasks.set(definition("report", schedule="0 9 * * *"), sunday, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), ts(sunday)) == {"default/report": ts(sunday - 2 * DAY)}


def test_jitter_shifts_the_slots_as_the_scheduler_does() -> None:
    jittered = definition("j", schedule="0 9 * * 1-5", jitterSeconds=600)
    offset = timedelta(seconds=jitter_offset("default/j", 600))
    assert offset
    tasks = MemoryTasks()
    tasks.set(jittered, MON_0900 + DAY + offset, DAY.total_seconds())
    assert SlotsBeforeLast().read(tasks.snapshot(), NOW) == {
        "default/j": ts(MON_0900 - 3 * DAY + offset)
    }


def test_no_series_without_a_next_slot_and_none_for_a_task_gone() -> None:
    tasks = MemoryTasks()
    slots = SlotsBeforeLast()
    tasks.set(definition("paused", suspend=True))
    tasks.set(definition("gone"), MON_0900, 60.0)
    assert slots.read(tasks.snapshot(), NOW) == {"default/gone": ts(MON_0900) - 120}
    tasks.remove("default/gone")
    assert slots.read(tasks.snapshot(), NOW) == {}


def test_the_series_in_the_exposition() -> None:
    tasks = MemoryTasks()
    tasks.set(definition("report", schedule="0 9 * * 1-5"), MON_0900 + DAY, DAY.total_seconds())
    text = Metrics(tasks).render()[0].decode()
    name = "crontask_task_slot_before_last_timestamp_seconds"
    assert f"# TYPE {name} gauge\n" in text
    assert f'{name}{{task="default/report"}} {int(ts(MON_0900 - 3 * DAY))}\n' in text
