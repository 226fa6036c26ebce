"""The dashboard's "Tasks" table over what crontask exports: its last failure (ago) is a task's
latest timeout or interruption, read from one gauge (a range over the failure counters would
read every sample of it for every task at each refresh), and a task that two replicas export
around a handover (--ha) is one row. Checked with promtool on the panel's own queries. A task's
failure counters exist from 0 (so ``increase()`` in a query of one's own sees the first)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import MemoryTasks, Metrics
from tests.deploy.test_monitoring import MONITORING, promtool
from tests.helpers import definition
from tests.sinks.test_metrics import NEXT, T0, Samples, of_task, run, samples

A = "default/a"
FAILURES = ("failed", "timedOut", "interrupted")
MINUTES = 10  # scrapes (a minute apart) of each state of the exposition


def table() -> dict[str, str]:
    """The "Tasks" table's queries by refId, for the job "crontask"."""
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p["title"] == "Tasks"]
    return {t["refId"]: t["expr"].replace("$job", "crontask") for t in panel["targets"]}


def promtool_test(folder: Path, input_series: list[dict[str, str]], checks: list[Any]) -> None:
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "promql_expr_test": checks}],
    }
    (folder / "table.test.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool(), "test", "rules", "table.test.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def counters(found: Samples) -> dict[str, float]:
    """``a``'s failure counters in one scrape, by status (absent: no series)."""
    return {
        status: value
        for (name, labels), value in found.items()
        if name == "crontask_runs_total"
        and dict(labels).get("task") == A
        and (status := dict(labels)["status"]) in FAILURES
    }


def test_a_new_task_exports_its_timeouts_and_interruptions_from_zero() -> None:
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    found = samples(Metrics(tasks))
    assert counters(found) == {"failed": 0, "timedOut": 0, "interrupted": 0}
    assert ("crontask_runs_total", "skipped") not in of_task(found, A)  # no failure: lazily


def last_failure(found: Samples) -> float | None:
    """``a``'s last failure gauge in one scrape (None: no series)."""
    return next(
        (
            value
            for (name, labels), value in found.items()
            if name == "crontask_task_last_failure_timestamp_seconds"
            and dict(labels).get("task") == A
        ),
        None,
    )


def test_last_failure_ago_reads_a_task_s_latest_timeout_or_interruption(tmp_path: Path) -> None:
    """Prometheus scrapes a fresh crontask every minute: ten scrapes before anything ran, ten
    after a timeout, ten after an interruption too. The table's column reads the time since the
    interruption ended: empty before any failure, then the latest one's age."""
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    metrics = Metrics(tasks)
    scrapes = [last_failure(samples(metrics))]
    run(metrics, A, RunStatus.TIMED_OUT, at=T0)
    scrapes.append(last_failure(samples(metrics)))
    interrupted = run(metrics, A, RunStatus.INTERRUPTED, at=NEXT)  # not the shutdown's
    scrapes.append(last_failure(samples(metrics)))
    assert scrapes[0] is None
    assert interrupted.finished_at is not None
    assert scrapes[2] == interrupted.finished_at.timestamp()
    series = [
        {
            "series": f'crontask_task_last_failure_timestamp_seconds{{job="crontask",task="{A}"}}',
            "values": " ".join(
                "_" if found is None else repr(found) for found in scrapes for _ in range(MINUTES)
            ),
        }
    ]
    checks = [
        {"expr": table()["E"], "eval_time": f"{MINUTES - 1}m", "exp_samples": []},
        {
            "expr": table()["E"],
            "eval_time": f"{len(scrapes) * MINUTES - 1}m",
            "exp_samples": [
                {
                    "labels": f'{{job="crontask",task="{A}"}}',
                    "value": (len(scrapes) * MINUTES - 1) * 60 - scrapes[2],
                }
            ],
        },
    ]
    promtool_test(tmp_path, series, checks)


def test_the_table_shows_a_task_once_while_two_replicas_export_it(tmp_path: Path) -> None:
    """At a handover the replica that gave the task away and the one that took it may both
    export it for a scrape or two: each of the table's queries gives one row for it (the
    latest timestamps, the oldest run in progress, the failures of both)."""
    gauges = {
        "crontask_task_last_success_timestamp_seconds": (100, 120),
        "crontask_task_next_run_timestamp_seconds": (360, 360),
        "crontask_task_schedule_interval_seconds": (60, 60),
        "crontask_task_last_run_duration_seconds": (5, 7),
        "crontask_task_running_since_timestamp_seconds": (30, 60),
        "crontask_task_last_failure_timestamp_seconds": (90, 80),
        "crontask_running_runs": (1, 1),  # the run going on at the old owner, read by the new
    }
    series = [
        {"series": f'{name}{{job="crontask",instance="{pod}",task="{A}"}}', "values": f"{v}x5"}
        for name, values in gauges.items()
        for pod, v in zip(("old:8080", "new:8080"), values, strict=True)
    ]
    time = 300  # time() at the evaluation, 5m
    expected = {
        "A": time - 120,  # since the later last success
        "B": 360 - time,
        "C": 60,
        "D": 7,
        "E": time - 90,  # since the later last failure
        "F": time - 30,  # the oldest attempt in progress
        "G": 1,  # that one run, not two
    }
    queries = table()
    assert queries.keys() == expected.keys()
    checks = [
        {
            "expr": queries[ref],
            "eval_time": "5m",
            "exp_samples": [{"labels": f'{{job="crontask",task="{A}"}}', "value": value}],
        }
        for ref, value in expected.items()
    ]
    promtool_test(tmp_path, series, checks)
