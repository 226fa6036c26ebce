"""The metrics wired as ``crontask run`` wires them (the scheduler's snapshot, the dispatcher's run
listener, the pass result), over real files, the fake-clock scheduler, the real Dispatcher
running real commands, and the in-memory store: exact values after runs and passes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from tests.helpers import local_actions

T0 = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def doc(name: str, args: str, extra: str = "") -> str:  # every minute
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}}}\n"
        f'spec:\n  schedule: "* * * * *"\n{extra}  command: {{args: {args}}}\n'
    )


class World:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.now = T0
        self.dispatcher = Dispatcher(
            MemoryRunStore(), owner="h:1:x", clock=lambda: self.now, actions=local_actions()
        )
        self.scheduler = MemoryScheduler(self.on_fire, T0)
        self.reconciler = Reconciler(
            [DirectorySource([folder])], self.scheduler, self.dispatcher, clock=lambda: self.now
        )
        self.metrics = Metrics(self.scheduler)
        self.dispatcher.subscribe(self.metrics.on_run)

    def on_fire(self, key: str, at: datetime) -> None:
        self.dispatcher.fire(self.scheduler.owned()[key], at)

    def reconcile(self) -> None:
        self.reconciler.refresh(None)
        result = self.reconciler.apply(None)
        self.metrics.reconciled(True, result.seconds, result.desired)

    async def advance(self, delta: timedelta) -> None:
        self.now += delta
        self.scheduler.advance(self.now)
        assert await self.dispatcher.drain(10)

    def value(self, name: str, **labels: str) -> float | None:
        body, _ = self.metrics.render()
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    def task_series(self, task: str) -> set[str]:
        body, _ = self.metrics.render()
        return {
            sample.name
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.labels.get("task") == task
        }


def play(tmp_path: Path, body: Callable[[World], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        world = World(tmp_path)
        await body(world)
        await world.dispatcher.shutdown(0)

    asyncio.run(main())


def test_values_follow_runs_and_passes(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        (w.folder / "ok.yaml").write_text(doc("ok", '["true"]'))
        (w.folder / "bad.yaml").write_text(doc("bad", '["sh", "-c", "exit 3"]'))
        w.reconcile()
        slot = T0.replace(second=0) + MINUTE
        assert w.value("crontask_task_next_run_timestamp_seconds", task="default/ok") == (
            slot.timestamp()
        )
        assert w.value("crontask_task_schedule_interval_seconds", task="default/ok") == 60
        assert w.value("crontask_task_last_success_timestamp_seconds", task="default/ok") is None
        assert w.value("crontask_tasks", source="file", state="Ready") == 2

        await w.advance(MINUTE)  # 12:01:30: the 12:01 slot runs, 30 s late by the fake clock
        ran_at = w.now.timestamp()  # the fake clock does not move while a run runs
        assert w.value("crontask_runs_total", task="default/ok", status="succeeded") == 1
        assert w.value("crontask_runs_total", task="default/ok", status="failed") == 0
        assert w.value("crontask_runs_total", task="default/bad", status="failed") == 1
        assert w.value("crontask_task_last_success_timestamp_seconds", task="default/ok") == (
            ran_at
        )
        assert w.value("crontask_task_last_failure_timestamp_seconds", task="default/bad") == (
            ran_at
        )
        assert w.value("crontask_task_last_failure_timestamp_seconds", task="default/ok") is None
        assert w.value("crontask_task_last_run_duration_seconds", task="default/ok") == 0
        assert w.value("crontask_running_runs", task="default/ok") == 0
        assert w.value("crontask_run_start_delay_seconds_count") == 2
        assert w.value("crontask_run_start_delay_seconds_sum") == 60  # 30 s each
        assert w.value("crontask_task_next_run_timestamp_seconds", task="default/ok") == (
            (slot + MINUTE).timestamp()
        )
        assert w.value("crontask_task_schedule_interval_seconds", task="default/ok") == 60
        # the 12:01 slot came: the slot before last is 12:00
        assert w.value("crontask_task_slot_before_last_timestamp_seconds", task="default/ok") == (
            (slot - MINUTE).timestamp()
        )
        assert w.task_series("default/ok") == {
            "crontask_runs_total",  # succeeded and failed
            "crontask_running_runs",
            "crontask_task_next_run_timestamp_seconds",
            "crontask_task_schedule_interval_seconds",
            "crontask_task_slot_before_last_timestamp_seconds",
            "crontask_task_last_success_timestamp_seconds",
            "crontask_task_last_run_duration_seconds",
        }

        # A broken file: its task runs its last good definition, flagged.
        (w.folder / "bad.yaml").write_text(
            doc("bad", '["sh", "-c", "exit 3"]').replace("* * * * *", "99 * * * *")
        )
        w.reconcile()
        assert w.value("crontask_tasks", source="file", state="Error") == 1
        assert w.value("crontask_definition_errors", source="file") == 1
        assert w.value("crontask_runs_total", task="default/bad", status="failed") == 1

        # Suspended: no next slot, so neither next run nor interval nor slot before last.
        (w.folder / "ok.yaml").write_text(doc("ok", '["true"]', "  suspend: true\n"))
        w.reconcile()
        assert w.value("crontask_tasks", source="file", state="Suspended") == 1
        assert w.value("crontask_task_next_run_timestamp_seconds", task="default/ok") is None
        assert w.value("crontask_task_schedule_interval_seconds", task="default/ok") is None
        before_last = "crontask_task_slot_before_last_timestamp_seconds"
        assert w.value(before_last, task="default/ok") is None
        assert w.value("crontask_runs_total", task="default/ok", status="succeeded") == 1

        # Removed: every series of the task goes.
        (w.folder / "ok.yaml").unlink()
        w.reconcile()
        assert w.task_series("default/ok") == set()
        assert w.task_series("default/bad")

    play(tmp_path, body)
