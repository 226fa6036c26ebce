"""A task removed and declared again while crontask runs: the slots that fell while it was not
declared were no slots of the task (the scheduler catches none of them up, README "Downtime"),
so ``crontask_task_slot_before_last_timestamp_seconds`` shows none of them, as after a resume:
the series is back once two slots have passed since it was declared again. Otherwise
``CrontaskTaskNoRecentSuccess`` would fire for them, with the task's last success read back from
the run history, until its next slot's run succeeds (a day later for a daily task). A task that
comes to this process while declared all along (a start-up, a handover) is exported at once,
as before (``test_metrics_slots_changed``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.core.desired import DesiredState
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.sinks.metrics_slots import SlotsBeforeLast
from tests.helpers import definition

WED_0900 = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)  # a Wednesday
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
KEY = "default/nightly"
NAME = "crontask_task_slot_before_last_timestamp_seconds"


def ts(at: datetime) -> float:
    return at.timestamp()


def test_a_task_declared_again_shows_no_slot_that_fell_while_it_was_removed() -> None:
    """Succeeded Wednesday 09:00, removed Wednesday 10:00, declared again Friday 12:00:
    Thursday's and Friday's 09:00 fell while it was removed."""
    tasks, slots = MemoryTasks(), SlotsBeforeLast()
    nightly, other = definition("nightly", schedule="0 9 * * *"), definition("other")
    declared = {KEY: nightly, other.key: other}
    tasks.set(nightly, WED_0900 + DAY, DAY.total_seconds())
    found = slots.read(tasks.snapshot(), ts(WED_0900 + HOUR), declared)
    assert found == {KEY: ts(WED_0900 - DAY)}
    tasks.remove(KEY)
    assert slots.read(tasks.snapshot(), ts(WED_0900 + 2 * HOUR), {other.key: other}) == {}
    back = WED_0900 + 2 * DAY + 3 * HOUR  # Friday 12:00
    tasks.set(nightly, WED_0900 + 3 * DAY, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), ts(back), declared) == {}  # was Thursday 09:00
    # Saturday's slot came: Friday's is the slot before last, still one it did not have
    tasks.set(nightly, WED_0900 + 4 * DAY, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), ts(WED_0900 + 3 * DAY), declared) == {}
    # Sunday's came: Saturday's is the slot before last, the first since it came back
    tasks.set(nightly, WED_0900 + 5 * DAY, DAY.total_seconds())
    found = slots.read(tasks.snapshot(), ts(WED_0900 + 4 * DAY), declared)
    assert found == {KEY: ts(WED_0900 + 3 * DAY)}


def test_a_task_handed_over_while_declared_is_exported_at_once() -> None:
    """With --ha a task leaves this replica's snapshot and comes back while declared all
    along: nothing says what happened to its slots meanwhile (it ran elsewhere)."""
    tasks, slots = MemoryTasks(), SlotsBeforeLast()
    nightly = definition("nightly", schedule="0 9 * * *")
    declared = {KEY: nightly}
    tasks.set(nightly, WED_0900 + DAY, DAY.total_seconds())
    assert slots.read(tasks.snapshot(), ts(WED_0900 + HOUR), declared) == {KEY: ts(WED_0900 - DAY)}
    tasks.remove(KEY)
    assert slots.read(tasks.snapshot(), ts(WED_0900 + 2 * HOUR), declared) == {}
    tasks.set(nightly, WED_0900 + 3 * DAY, DAY.total_seconds())
    found = slots.read(tasks.snapshot(), ts(WED_0900 + 2 * DAY + 3 * HOUR), declared)
    assert found == {KEY: ts(WED_0900 + DAY)}


def test_the_first_read_exports_every_task() -> None:
    """At start-up nothing was declared before: a restart keeps a failing task's alert."""
    tasks, slots = MemoryTasks(), SlotsBeforeLast()
    nightly = definition("nightly", schedule="0 9 * * *")
    tasks.set(nightly, WED_0900 + DAY, DAY.total_seconds())
    found = slots.read(tasks.snapshot(), ts(WED_0900 + HOUR), {KEY: nightly})
    assert found == {KEY: ts(WED_0900 - DAY)}


def _next_0900(after: datetime) -> datetime:
    at = after.replace(hour=9, minute=0, second=0, microsecond=0)
    return at if at > after else at + DAY


def test_the_metrics_of_a_task_declared_again_show_no_old_slot() -> None:
    """Through ``Metrics``: the passes' desired state says which tasks are declared."""
    tasks = MemoryTasks()
    metrics = Metrics(tasks)
    nightly, other = definition("nightly", schedule="0 9 * * *"), definition("other")
    following = _next_0900(datetime.now(UTC))
    tasks.set(nightly, following, DAY.total_seconds())
    metrics.reconciled(True, 0.01, DesiredState(tasks={KEY: nightly, other.key: other}))
    before = f'{NAME}{{task="{KEY}"}} {int(ts(following - 2 * DAY))}\n'
    assert before in metrics.render()[0].decode()
    tasks.remove(KEY)
    metrics.reconciled(True, 0.01, DesiredState(tasks={other.key: other}))
    assert f'{NAME}{{task="{KEY}"}}' not in metrics.render()[0].decode()
    tasks.set(nightly, following, DAY.total_seconds())
    metrics.reconciled(True, 0.01, DesiredState(tasks={KEY: nightly, other.key: other}))
    assert f'{NAME}{{task="{KEY}"}}' not in metrics.render()[0].decode()
