"""deploy/monitoring: the alerts on a process' own gauges bridge a failed scrape, and
CrontaskTaskNoRecentSuccess lets go of a task's old slots as soon as its schedule is edited.
Checked with promtool on crontask-rules.test.yaml's own scenarios, against the rules file.

- A failed scrape (a restart, a scrape that timed out) marks every series of the target stale
  at once. CrontaskDefinitionErrors, CrontaskRunStoreUnavailable and CrontaskReplicaFenced read
  their gauges through last_over_time, as the per-task rules do, so they stay firing across it
  rather than resolve and be pending again for their ``for``.
- After an edit of a task's schedule, time zone or jitter, crontask exports no slot before last
  until two slots of the new schedule have passed. The 5m window would keep the old one, and
  the alert would fire on the old slots (or resolve only once the window let go of them)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.test_monitoring import RULE_TESTS, RULES, promtool

GAP = "the process gauges' alerts survive a restart of crontask (one failed scrape)"
EDIT = "a task's schedule edited while NoRecentSuccess fires"
# The gauges of one process that each alert reads.
GAUGES = {
    "CrontaskDefinitionErrors": ("crontask_definition_errors",),
    "CrontaskRunStoreUnavailable": ("crontask_run_store_up", "crontask_run_records_pending"),
    "CrontaskReplicaFenced": ("crontask_replica_fenced",),
    "CrontaskClockOffset": ("crontask_clock_offset_seconds",),
}


def scenarios() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in yaml.safe_load(RULE_TESTS.read_text())["tests"]}


def run_promtool(folder: Path, name: str) -> None:
    """promtool's unit test of the scenario ``name`` of crontask-rules.test.yaml alone."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["rule_files"] = [str(RULES)]
    tests["tests"] = [scenarios()[name]]
    (folder / "gaps.test.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool(), "test", "rules", "gaps.test.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def firing_at(case: dict[str, Any], alertname: str) -> set[str]:
    return {
        c["eval_time"]
        for c in case["alert_rule_test"]
        if c["alertname"] == alertname and c["exp_alerts"]
    }


def test_the_process_gauges_alerts_survive_a_failed_scrape(tmp_path: Path) -> None:
    """Each gauge is read only through last_over_time(...[5m]), and the scenario of a failed
    scrape holds each alert firing at it (15m) and at the next scrape (16m)."""
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    for alert, gauges in GAUGES.items():
        expr = rules[alert]["expr"]
        for gauge in gauges:
            assert expr.count(gauge) == expr.count(f"last_over_time({gauge}[5m])") > 0, alert
    case = scenarios()[GAP]
    stale = {s["series"].split("{")[0] for s in case["input_series"] if "stale" in s["values"]}
    assert {gauge for gauges in GAUGES.values() for gauge in gauges} <= stale
    for alert in GAUGES:
        assert {"15m", "16m"} <= firing_at(case, alert), alert
    run_promtool(tmp_path, GAP)


def test_an_edited_schedule_ends_no_recent_success_at_once(tmp_path: Path) -> None:
    """The alert fires for a task two days without a success; its slot before last goes stale
    at 15m (the edit) while its last success is still exported: no alert from then on."""
    case = scenarios()[EDIT]
    (slots,) = [
        s["values"]
        for s in case["input_series"]
        if s["series"].startswith("crontask_task_slot_before_last_timestamp_seconds")
    ]
    assert slots.endswith("x14 stale")
    checks = [c for c in case["alert_rule_test"] if c["alertname"] == "CrontaskTaskNoRecentSuccess"]
    assert firing_at(case, "CrontaskTaskNoRecentSuccess") == {"14m"}
    assert {c["eval_time"] for c in checks if not c["exp_alerts"]} == {"15m", "18m"}
    run_promtool(tmp_path, EDIT)
