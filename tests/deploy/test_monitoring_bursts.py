"""deploy/monitoring: two alerts that must fire on what happens in bursts and long runs, held
to promtool scenarios of crontask-rules.test.yaml (test_monitoring runs the whole file; these
tests keep the scenarios, and what each one expects, from being dropped or weakened).

- ``CrontaskStartDelayHigh``: late starts come in bursts at the slots many tasks share, and
  between bursts its rate is 0 (the quantile NaN, a pending alert reset): its window must hold
  a burst for longer than its ``for``.
- ``CrontaskTaskNoRecentSuccess``: a run in progress since the last success holds it back
  however long it runs (a Forbid task's runs may outlast two intervals by design), so a hung
  run is ``CrontaskTaskRunningLong``'s alone; overlapping runs that all fail still fire it."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy.test_monitoring import RULE_TESTS, firing, rules

BURSTS = "hourly bursts of late starts, and one late start among many"
FORBID_LONG = "an hourly Forbid task whose runs take 150 minutes"
HUNG = "a hung run after a success, and a hung first run"
OVERLAPPING = "an Allow task whose overlapping runs all fail"


def minutes(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([mh])", duration)
    assert match is not None, duration
    return int(match.group(1)) * (60 if match.group(2) == "h" else 1)


def cases() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in yaml.safe_load(RULE_TESTS.read_text())["tests"]}


def quiet(case: dict[str, Any], alertname: str) -> list[str]:
    """The eval times of ``case`` at which ``alertname`` is expected not to fire."""
    return [
        c["eval_time"]
        for c in case["alert_rule_test"]
        if c["alertname"] == alertname and not c["exp_alerts"]
    ]


def test_start_delay_fires_at_every_burst_of_late_starts() -> None:
    """The rate's window is longer than ``for`` plus a scrape and an evaluation interval (1m
    each by default), and promtool's hourly bursts fire in each hour, are quiet between them,
    and the instances with one late start among many never fire."""
    (rule,) = [r for r in rules() if r["alert"] == "CrontaskStartDelayHigh"]
    (window,) = re.findall(r"\[(\w+)\]", rule["expr"])
    assert minutes(window) > minutes(rule["for"]) + 2, (window, rule["for"])
    assert f"over the last {minutes(window)} minutes" in rule["annotations"]["description"]
    case = cases()[BURSTS]
    fired = firing(case, "CrontaskStartDelayHigh")
    assert len({minutes(t) // 60 for t in fired}) >= 3, fired
    assert quiet(case, "CrontaskStartDelayHigh"), "no check between bursts"
    instances = {
        alert["exp_labels"]["instance"]
        for check in case["alert_rule_test"]
        for alert in check["exp_alerts"]
    }
    assert instances == {"a:8080"}
    assert {'instance="b:8080"', 'instance="c:8080"'} <= {
        label
        for s in case["input_series"]
        for label in re.findall(r'instance="[^"]+"', s["series"])
    }


def test_no_recent_success_waits_for_a_run_since_the_last_success() -> None:
    """A Forbid task whose runs take two and a half intervals, and a hung run (after a
    success, or a first one), never fire it, and RunningLong fires for the hung ones; an Allow
    task whose overlapping runs all fail does fire it."""
    (rule,) = [r for r in rules() if r["alert"] == "CrontaskTaskNoRecentSuccess"]
    running = "last_over_time(crontask_task_running_since_timestamp_seconds[5m]))"
    success = "(last_over_time(crontask_task_last_success_timestamp_seconds[5m]))"
    held_back = re.escape(running) + r"\s*>=\s*max without \(instance, pod\) " + re.escape(success)
    assert re.search(held_back, rule["expr"])
    found = cases()
    for name in (FORBID_LONG, HUNG):
        assert not firing(found[name], "CrontaskTaskNoRecentSuccess"), name
        assert len(quiet(found[name], "CrontaskTaskNoRecentSuccess")) >= 2, name
    assert not firing(found[FORBID_LONG], "CrontaskTaskRunningLong")
    hung = [
        alert["exp_labels"]["task"]
        for check in found[HUNG]["alert_rule_test"]
        if check["alertname"] == "CrontaskTaskRunningLong"
        for alert in check["exp_alerts"]
    ]
    assert set(hung) == {"ops/hung", "ops/first"}
    assert firing(found[OVERLAPPING], "CrontaskTaskNoRecentSuccess")
