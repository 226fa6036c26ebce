"""The Grafana dashboard over two installs that Prometheus scrapes under one job: the PodMonitor
names every install's job ``crontask`` and tells them apart by ``namespace`` only, so wherever
the dashboard reduces an install's series (the replicas of one install export the same thing)
it keeps ``namespace``, as the alert rules do. Checked with promtool on the panels' own
queries."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.deploy.test_monitoring import MONITORING
from tests.sinks.test_metrics_dashboard_task_failures import promtool_test, table

TASK = "default/backup"  # the same task key in both installs
TEAMS = ("team-a", "team-b")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return loaded


def stats() -> dict[str, str]:
    """The first query of each panel, by title, for the job "crontask"."""
    return {
        p["title"]: p["targets"][0]["expr"].replace("$job", "crontask")
        for p in dashboard()["panels"]
        if p.get("targets")
    }


def of(team: str, replica: int) -> str:
    return f'job="crontask",namespace="{team}",instance="{team}-{replica}:8080"'


def test_the_stats_count_both_installs_under_one_job(tmp_path: Path) -> None:
    """Two replicas in each install read every source: team-a has 3 definition errors, team-b
    5, 8 in all (not the larger of the two); each install's default/backup is failing: 2."""
    errors = {"team-a": 3, "team-b": 5}
    series = [
        {
            "series": f'crontask_definition_errors{{{of(team, r)},source="git"}}',
            "values": f"{errors[team]}x10",
        }
        for team in TEAMS
        for r in (1, 2)
    ] + [
        {"series": f'{name}{{{of(team, 1)},task="{TASK}"}}', "values": f"{value}x10"}
        for team in TEAMS
        for name, value in (
            ("crontask_task_last_failure_timestamp_seconds", 600),
            ("crontask_task_last_success_timestamp_seconds", 300),
        )
    ]
    checks = [
        {"expr": stats()[title], "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": n}]}
        for title, n in (("Definition errors", 8), ("Failing tasks", 2))
    ]
    promtool_test(tmp_path, series, checks)


def test_the_table_has_a_row_for_the_task_of_each_install(tmp_path: Path) -> None:
    """Both installs run default/backup: each of the table's queries gives one row per install,
    with that install's own values (the merge joins them on job, namespace and task)."""
    gauges = {  # name: (team-a's value, team-b's)
        "crontask_task_last_success_timestamp_seconds": (100, 500),
        "crontask_task_next_run_timestamp_seconds": (900, 1200),
        "crontask_task_schedule_interval_seconds": (60, 3600),
        "crontask_task_last_run_duration_seconds": (5, 7),
        "crontask_task_running_since_timestamp_seconds": (30, 60),
        "crontask_task_last_failure_timestamp_seconds": (200, 400),
        "crontask_running_runs": (1, 2),
    }
    series = [
        {"series": f'{name}{{{of(team, 1)},task="{TASK}"}}', "values": f"{value}x10"}
        for name, values in gauges.items()
        for team, value in zip(TEAMS, values, strict=True)
    ]
    time = 600  # time() at the evaluation, 10m
    expected = {  # refId: (team-a's value, team-b's)
        "A": (time - 100, time - 500),
        "B": (900 - time, 1200 - time),
        "C": (60, 3600),
        "D": (5, 7),
        "E": (time - 200, time - 400),
        "F": (time - 30, time - 60),
        "G": (1, 2),
    }
    queries = table()
    assert queries.keys() == expected.keys()
    checks = [
        {
            "expr": queries[ref],
            "eval_time": "10m",
            "exp_samples": [
                {"labels": f'{{job="crontask",namespace="{team}",task="{TASK}"}}', "value": value}
                for team, value in zip(TEAMS, values, strict=True)
            ],
        }
        for ref, values in expected.items()
    ]
    promtool_test(tmp_path, series, checks)


_GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")


def test_every_reduction_by_job_keeps_the_install() -> None:
    """A query grouped by job alone would fold one install into another (the promtool checks
    above cover today's panels; this catches a new one), and the table shows the install."""
    queries = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    groupings = [
        {label.strip() for label in labels.split(",")}
        for expr in queries
        for labels in _GROUPING.findall(expr)
    ]
    assert any("job" in g for g in groupings)  # the test reads real groupings
    assert all("namespace" in g for g in groupings if "job" in g), groupings
    (panel,) = [p for p in dashboard()["panels"] if p["title"] == "Tasks"]
    (organize,) = [t["options"] for t in panel["transformations"] if t["id"] == "organize"]
    assert "namespace" not in organize["excludeByName"]
    assert organize["renameByName"]["namespace"] == "Install"
