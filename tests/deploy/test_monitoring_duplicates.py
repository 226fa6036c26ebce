"""deploy/monitoring: the alerts on two schedulers of one install, and the dashboard's table
bounded per task. Checked with promtool against the rules file itself.

- ``CrontaskDuplicateScheduler``: two crontasks without --ha on the same CronTasks (the
  Deployment scaled to 2) both export ``crontask_single_lease_conflict 1``, and every slot runs
  in each: one alert per install, not one per pod; a short overlap stays silent.
- ``CrontaskMembersDisagreeing``: every --ha replica exports ``crontask_members_disagreeing``
  from the same comparison of the members' views: one alert per install, after 10 minutes (a
  git push reaches each replica at its own next fetch, a rolling update one pod at a time).
- The "Tasks" table reads one sample per series: a range over a counter reads every sample in
  it for every task at each refresh (``increase(...[24h])`` at a 1m scrape: some 4 300 a task,
  past Prometheus' --query.max-samples, 50 M, with about 5 800 tasks at a 30s scrape)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.test_monitoring import MONITORING, RULES, promtool

DUPLICATE = "CrontaskDuplicateScheduler"
DISAGREEING = "CrontaskMembersDisagreeing"


def of(namespace: str, pod: str) -> str:
    return f'job="crontask",namespace="{namespace}",instance="{pod}:8080"'


def alerts(name: str, severity: str, *namespaces: str) -> list[dict[str, Any]]:
    """The alerts expected: one per install, with only the install's labels."""
    return [
        {"exp_labels": {"severity": severity, "job": "crontask", "namespace": namespace}}
        for namespace in namespaces
    ]


def run_promtool(folder: Path, input_series: list[dict[str, str]], checks: list[Any]) -> None:
    """promtool's unit test of ``checks`` (alert_rule_test) on the rules file's groups. promtool
    compares an alert's annotations too, and these checks give none: the copy tested has none
    (crontask-rules.test.yaml checks them)."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "alert_rule_test": checks}],
    }
    (folder / "duplicates.test.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool(), "test", "rules", "duplicates.test.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_schedulers_of_one_install_fire_one_critical_alert(tmp_path: Path) -> None:
    """team-a's Deployment scaled to 2 (both pods see the other) for an hour; team-b's
    pods overlap for one minute (a rollout), then team-b runs one pod that sees no other: one
    alert, team-a's, once the conflict has lasted 2 minutes."""
    series = [
        {"series": f"crontask_single_lease_conflict{{{of('team-a', pod)}}}", "values": "1x60"}
        for pod in ("a1", "a2")
    ] + [
        {"series": f"crontask_single_lease_conflict{{{of('team-b', 'b1')}}}", "values": "0 1 0x58"},
        {
            "series": f"crontask_single_lease_conflict{{{of('team-b', 'b2')}}}",
            "values": "0 1 stale",
        },
    ]
    checks = [
        {"eval_time": "1m", "alertname": DUPLICATE, "exp_alerts": []},  # pending
        {
            "eval_time": "3m",
            "alertname": DUPLICATE,
            "exp_alerts": alerts(DUPLICATE, "critical", "team-a"),
        },
        {
            "eval_time": "60m",
            "alertname": DUPLICATE,
            "exp_alerts": alerts(DUPLICATE, "critical", "team-a"),
        },
    ]
    run_promtool(tmp_path, series, checks)


def test_the_reviewer_s_two_pods_that_each_run_every_slot_fire(tmp_path: Path) -> None:
    """Two pods without a namespace label (a plain scrape config) that both see the conflict
    for an hour, each running every slot of default/pay: one alert."""
    series = [
        {
            "series": f'crontask_single_lease_conflict{{job="crontask",instance="{i}"}}',
            "values": "1x60",
        }
        for i in ("a", "b")
    ]
    expected = [{"exp_labels": {"severity": "critical", "job": "crontask"}}]
    checks = [{"eval_time": "60m", "alertname": DUPLICATE, "exp_alerts": expected}]
    run_promtool(tmp_path, series, checks)


def test_replicas_reading_different_definitions_for_10_minutes_warn_once(tmp_path: Path) -> None:
    """team-a's three replicas disagree from 1m on (a volume mounted on one only); team-b's
    for 5 minutes (a git push that the replicas fetch at different times), then agree."""
    series = [
        {"series": f"crontask_members_disagreeing{{{of('team-a', pod)}}}", "values": "0 1x30"}
        for pod in ("a1", "a2", "a3")
    ] + [
        {"series": f"crontask_members_disagreeing{{{of('team-b', pod)}}}", "values": "0 1x5 0x25"}
        for pod in ("b1", "b2")
    ]
    checks = [
        {"eval_time": "6m", "alertname": DISAGREEING, "exp_alerts": []},
        {"eval_time": "10m", "alertname": DISAGREEING, "exp_alerts": []},  # pending 9m
        {
            "eval_time": "12m",
            "alertname": DISAGREEING,
            "exp_alerts": alerts(DISAGREEING, "warning", "team-a"),
        },
        {
            "eval_time": "30m",
            "alertname": DISAGREEING,
            "exp_alerts": alerts(DISAGREEING, "warning", "team-a"),
        },
    ]
    run_promtool(tmp_path, series, checks)


def test_the_tasks_table_reads_no_range_of_samples_per_task() -> None:
    """Every query of the per-task table is instant over gauges: no range selector, whose cost
    grows with its window times the number of tasks."""
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p["title"] == "Tasks"]
    exprs = [t["expr"] for t in panel["targets"]]
    assert len(exprs) == 7
    ranges = [e for e in exprs if re.search(r"\[[^\]]+\]", e)]
    assert not ranges, ranges
