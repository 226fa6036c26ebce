"""``reconciler.sinks.metrics_slots`` after a task's slots changed under this process: a resumed
task, or one whose schedule was edited, exports no slot before last that is earlier than the
change (a slot it did not have then: suspended, or of its old schedule) until two slots have
passed under its current definition; otherwise ``CrontaskTaskNoRecentSuccess`` would fire for
the slots it never had. A task new to the process (start-up, a handover) is exported at once,
as before: a restart must not silence the alert of a task that was failing before it. Times
are explicit: each read is given its own instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.core.desired import Definition
from reconciler.sinks.metrics import MemoryTasks
from reconciler.sinks.metrics_slots import SlotsBeforeLast
from tests.helpers import definition

WED_0900 = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)  # a Wednesday
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
KEY = "default/nightly"


def ts(at: datetime) -> float:
    return at.timestamp()


class Task:
    """One task as the scheduler shows it, read by one :class:`SlotsBeforeLast`."""

    def __init__(self, slots: SlotsBeforeLast | None = None) -> None:
        self.tasks = MemoryTasks()
        self.slots = slots or SlotsBeforeLast()

    def read(self, now: datetime, task: Definition, following: datetime | None) -> datetime | None:
        interval = None if following is None else DAY.total_seconds()
        self.tasks.set(task, following, interval)
        found = self.slots.read(self.tasks.snapshot(), ts(now))
        return None if KEY not in found else datetime.fromtimestamp(found[KEY], UTC)


def nightly(schedule: str = "0 9 * * *", **spec: Any) -> Definition:
    return definition("nightly", schedule=schedule, **spec)


def test_a_resumed_task_shows_no_slot_that_fell_while_it_was_suspended() -> None:
    """The reviewer's case: last success Wednesday 09:00, suspended Wednesday 12:00, resumed
    Friday 12:00, too late to catch Friday's 09:00 up. Thursday's 09:00 and Friday's fell while
    it was suspended: the series is back once Saturday's and Sunday's slots have passed."""
    task = Task()
    assert task.read(WED_0900 + HOUR, nightly(), WED_0900 + DAY) == WED_0900 - DAY
    assert task.read(WED_0900 + 3 * HOUR, nightly(suspend=True), None) is None
    assert task.read(WED_0900 + DAY, nightly(suspend=True), None) is None
    resumed = WED_0900 + 2 * DAY + 3 * HOUR  # Friday 12:00
    assert task.read(resumed, nightly(), WED_0900 + 3 * DAY) is None  # was Thursday 09:00
    assert task.read(resumed + HOUR, nightly(), WED_0900 + 3 * DAY) is None
    # Saturday's slot came: Friday's is the slot before last, still one it did not have
    assert task.read(WED_0900 + 3 * DAY, nightly(), WED_0900 + 4 * DAY) is None
    # Sunday's came: Saturday's is the slot before last, the first after the resume
    sunday = WED_0900 + 4 * DAY
    assert task.read(sunday, nightly(), WED_0900 + 5 * DAY) == WED_0900 + 3 * DAY
    assert task.read(sunday + HOUR, nightly(), WED_0900 + 5 * DAY) == WED_0900 + 3 * DAY


def test_a_task_known_only_while_suspended_is_watched_from_its_resume() -> None:
    """Started while the task was suspended: its resume is still a change this process saw."""
    task = Task()
    assert task.read(WED_0900, nightly(suspend=True), None) is None
    resumed = WED_0900 + 2 * DAY + 3 * HOUR
    assert task.read(resumed, nightly(), WED_0900 + 3 * DAY) is None


def test_an_edited_schedule_shows_no_slot_of_the_old_one() -> None:
    """09:00 until Wednesday 12:00, then 10:00 (the reviewer's edit, a day long): Tuesday's and
    Wednesday's 10:00 were no slots of the task; Thursday's 10:00 is the first that was."""
    task = Task()
    assert task.read(WED_0900 + HOUR, nightly(), WED_0900 + DAY) == WED_0900 - DAY
    edited = WED_0900 + 3 * HOUR
    ten = nightly("0 10 * * *")
    thursday_10 = WED_0900 + DAY + HOUR
    assert task.read(edited, ten, thursday_10) is None  # was Tuesday 10:00
    assert task.read(thursday_10, ten, thursday_10 + DAY) is None  # Wednesday 10:00
    assert task.read(thursday_10 + DAY, ten, thursday_10 + 2 * DAY) == thursday_10


def test_an_edit_during_the_wait_starts_it_again() -> None:
    task = Task()
    assert task.read(WED_0900 + HOUR, nightly(), WED_0900 + DAY) == WED_0900 - DAY
    ten, eleven = nightly("0 10 * * *"), nightly("0 11 * * *")
    assert task.read(WED_0900 + 3 * HOUR, ten, WED_0900 + DAY + HOUR) is None
    assert task.read(WED_0900 + DAY + 3 * HOUR, eleven, WED_0900 + 2 * DAY + 2 * HOUR) is None
    assert task.read(WED_0900 + 3 * DAY, eleven, WED_0900 + 3 * DAY + 2 * HOUR) is None
    fifth = WED_0900 + 4 * DAY + 2 * HOUR
    assert task.read(fifth, eleven, fifth + DAY) == WED_0900 + 3 * DAY + 2 * HOUR


def test_a_task_new_to_the_process_is_exported_at_once() -> None:
    """A restart or a handover right after a resume or an edit: nothing says when it was, and
    a task that was failing before the restart keeps its alert."""
    resumed = WED_0900 + 2 * DAY + 3 * HOUR
    assert Task().read(resumed, nightly(), WED_0900 + 3 * DAY) == WED_0900 + DAY
    assert Task().read(resumed, nightly("0 10 * * *"), WED_0900 + 3 * DAY + HOUR) == (
        WED_0900 + DAY + HOUR
    )


def test_a_task_gone_and_back_is_new_again() -> None:
    """Handed over to another replica and back: this process did not see what happened."""
    task = Task()
    assert task.read(WED_0900 + HOUR, nightly(), WED_0900 + DAY) == WED_0900 - DAY
    task.tasks.remove(KEY)
    assert task.slots.read(task.tasks.snapshot(), ts(WED_0900 + 2 * HOUR)) == {}
    assert task.read(
        WED_0900 + 2 * DAY + HOUR, nightly("0 10 * * *"), WED_0900 + 3 * DAY + HOUR
    ) == (WED_0900 + DAY + HOUR)


def test_an_unchanged_definition_is_exported_throughout() -> None:
    task = Task()
    for day in range(5):
        now = WED_0900 + day * DAY + HOUR
        assert task.read(now, nightly(), WED_0900 + (day + 1) * DAY) == now - HOUR - DAY


def test_an_edit_that_moves_no_slot_keeps_the_series() -> None:
    """A new command (say, the fix of a task that keeps failing) leaves the task's slots where
    they were: they were its slots, and the alert about them stays until a run succeeds."""
    task = Task()
    assert task.read(WED_0900 + HOUR, nightly(), WED_0900 + DAY) == WED_0900 - DAY
    fixed = nightly(command={"args": ["/bin/true", "--fixed"]}, startingDeadlineSeconds=60)
    assert fixed.hash != nightly().hash
    assert task.read(WED_0900 + 2 * HOUR, fixed, WED_0900 + DAY) == WED_0900 - DAY
    assert task.read(WED_0900 + DAY, fixed, WED_0900 + 2 * DAY) == WED_0900
