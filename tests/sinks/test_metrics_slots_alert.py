"""``CrontaskTaskNoRecentSuccess`` over the slot before last that ``metrics_slots`` exports
around a resume, checked with promtool on the real rules: a task resumed after the slots that
fell while it was suspended, and after the deadline of the latest of them (no catch-up), does
not alert for them; if its runs fail after the resume, it alerts once two slots have passed
under its current definition. The series is worked out by :class:`SlotsBeforeLast` itself, a
read a minute, as Prometheus scrapes it."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.sinks.metrics import MemoryTasks
from reconciler.sinks.metrics_slots import SlotsBeforeLast
from tests.deploy.test_monitoring import RULES, promtool
from tests.helpers import definition

TASK = "ops/sync"
EVERY = 20 * 60  # */20 * * * *: slots at 0, 20m, 40m, 60m, 80m (promtool's clock starts at 0)
SUSPENDED = range(10, 45)  # minutes: suspended at 10m, resumed at 45m (20m and 40m missed)
MINUTES = 100
ALERT = "CrontaskTaskNoRecentSuccess"


def slot_series() -> str:
    """The slot before last, read each minute as the scheduler shows the task then."""
    tasks, slots = MemoryTasks(), SlotsBeforeLast()
    values = []
    for minute in range(MINUTES + 1):
        now = minute * 60
        suspended = minute in SUSPENDED
        following = None if suspended else datetime.fromtimestamp((now // EVERY + 1) * EVERY, UTC)
        task = definition("sync", namespace="ops", schedule="*/20 * * * *", suspend=suspended)
        tasks.set(task, following, float(EVERY))
        found = slots.read(tasks.snapshot(), float(now)).get(TASK)
        values.append("_" if found is None else str(int(found)))
    return " ".join(values)


def series(name: str, values: str) -> dict[str, str]:
    labels = f'job="crontask",instance="a:8080",task="{TASK}"'
    return {"series": f"{name}{{{labels}}}", "values": values}


def firing(at_minute: int, last_success: int) -> dict[str, Any]:
    """The alert as the rules word it, at ``at_minute``."""
    rule = next(
        r
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for r in group["rules"]
        if r.get("alert") == ALERT
    )
    ago = at_minute * 60 - last_success
    took = f"{ago // 3600}h {ago % 3600 // 60}m {ago % 60}s"
    annotations = {
        name: text.replace("{{ $labels.task }}", TASK).replace(
            "{{ $value | humanizeDuration }}", took
        )
        for name, text in rule["annotations"].items()
    }
    return {
        "exp_labels": {"severity": "warning", "job": "crontask", "task": TASK},
        "exp_annotations": annotations,
    }


def promtool_test(folder: Path, success: str, checks: list[dict[str, Any]]) -> None:
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    series("crontask_task_last_success_timestamp_seconds", success),
                    series("crontask_task_slot_before_last_timestamp_seconds", slot_series()),
                    series("crontask_task_schedule_interval_seconds", f"{EVERY}x{MINUTES}"),
                    series("crontask_running_runs", f"0x{MINUTES}"),
                ],
                "alert_rule_test": [{"alertname": ALERT, **check} for check in checks],
            }
        ],
    }
    (folder / "resume.test.yaml").write_text(yaml.safe_dump(tests, width=1000))
    result = subprocess.run(
        [promtool(), "test", "rules", "resume.test.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_slot_series_around_the_resume() -> None:
    values = slot_series().split()
    assert values[9] == "-1200"  # before the suspension: the slot before 0
    assert set(values[10:80]) == {"_"}  # suspended, then until 60m and 80m have come
    assert values[80:] == ["3600"] * 20 + ["4800"]


@pytest.mark.parametrize("minute", [55, 62, 79, 95])
def test_no_alert_for_the_slots_missed_while_suspended(tmp_path: Path, minute: int) -> None:
    """The run of the slot at 0 succeeded at 5 s, and the first slot after the resume (60m)
    succeeds at 60m 5s; at 55m the slot before last would be 20m's, suspended."""
    promtool_test(
        tmp_path, f"5x60 3605x{MINUTES - 60}", [{"eval_time": f"{minute}m", "exp_alerts": []}]
    )


def test_an_alert_once_two_slots_failed_after_the_resume(tmp_path: Path) -> None:
    """No success after the one at 5 s: the runs of 60m and 80m did not succeed."""
    checks: list[dict[str, Any]] = [
        {"eval_time": "89m", "exp_alerts": []},
        {"eval_time": "95m", "exp_alerts": [firing(95, 5)]},
    ]
    promtool_test(tmp_path, f"5x{MINUTES}", checks)
