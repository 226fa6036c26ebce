"""deploy/monitoring: the alert rules pass promtool (syntax and a unit test per alert), the
PrometheusRule holds the same rules, and every query of the rules and the Grafana dashboard
names only metrics that a real ``crontask run`` exports (read from its live /metrics)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from reconciler.sinks.metrics import Metrics
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "crontask-rules.yaml"
RULE_TESTS = MONITORING / "crontask-rules.test.yaml"
# Series Prometheus makes itself: ALERTS is the rules' own state, which two per-task rules read.
PROMETHEUS_OWN = {"up", "ALERTS"}
ALERTS = {
    "CrontaskTaskFailing",
    "CrontaskTaskNoRecentSuccess",
    "CrontaskTaskRunningLong",
    "CrontaskDefinitionErrors",
    "CrontaskSourceSyncFailing",
    "CrontaskNotificationsFailing",
    "CrontaskStartDelayHigh",
    "CrontaskRunStoreUnavailable",
    "CrontaskRunRecordsLost",
    "CrontaskDown",
    "CrontaskReplicaMissing",
    "CrontaskReplicaFenced",
    "CrontaskDuplicateScheduler",
    "CrontaskMembersDisagreeing",
    "CrontaskClockOffset",
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool not found: install Debian's prometheus package (.ci/run does: "
            "apt-get install --no-install-recommends prometheus)"
        )
    return found


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@pytest.mark.slow
def test_promtool_unit_tests_every_alert() -> None:
    tests = MONITORING / "crontask-rules.test.yaml"
    result = subprocess.run(
        [promtool(), "test", "rules", tests.name],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        check["alertname"]
        for case in yaml.safe_load(tests.read_text())["tests"]
        for check in case["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert tested == ALERTS


PER_TASK = {"CrontaskTaskFailing", "CrontaskTaskNoRecentSuccess", "CrontaskTaskRunningLong"}
# The one bare read of task series: the owner scraped now (its last success) without a slot
# before last, after an edit of the schedule. At a restart or a handover neither is there, so
# it holds nothing back: promtool's restart and handover scenarios hold NoRecentSuccess firing.
PRESENT_NOW = (
    "max without (instance, pod) (crontask_task_last_success_timestamp_seconds) unless "
    "max without (instance, pod) (crontask_task_slot_before_last_timestamp_seconds)"
)


def test_the_per_task_rules_bridge_a_restart_and_a_handover() -> None:
    """Prometheus marks a target's series stale at once when a scrape fails or the target
    goes, so a per-task rule reads every task series through last_over_time (a bare one would
    resolve the alert at a restart or a handover), and promtool's scenarios of a restart and of
    a handover hold each per-task alert firing across the gap."""
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    per_task = {r["alert"] for r in rules if "without (instance, pod)" in r["expr"]}
    assert per_task == PER_TASK
    for rule in rules:
        expr = " ".join(rule["expr"].split())
        if rule["alert"] == "CrontaskTaskNoRecentSuccess":
            assert PRESENT_NOW in expr
            expr = expr.replace(PRESENT_NOW, "")
        bare = re.findall(r"(?<!last_over_time\()\b(crontask_task_\w+)(?!\w*\[5m\])", expr)
        assert not bare, f"{rule['alert']} reads {bare} without last_over_time"
    cases = yaml.safe_load((MONITORING / "crontask-rules.test.yaml").read_text())["tests"]
    for gap in ("restart", "handover"):
        (case,) = [c for c in cases if c["name"].startswith(f"the per-task alerts survive a {gap}")]
        assert any("stale" in s["values"] for s in case["input_series"])
        held = {c["alertname"] for c in case["alert_rule_test"] if c["exp_alerts"]}
        assert held == PER_TASK


UNEVEN_SLOTS = (
    "a weekday task's Monday run that takes 20 minutes",
    "a twice-a-day task's long 09:00 run after the night",
    "a weekday task over a weekend after a restart",
)
TWO_FAILED_SLOTS = "a weekday task that fails on Monday and on Tuesday"


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_no_recent_success_counts_slots_not_intervals() -> None:
    """CrontaskTaskNoRecentSuccess compares the last success with the slot before last that
    crontask exports, not with a multiple of the interval, which right after a long gap (or
    after a restart, before the first slot) is the short one that follows: promtool's
    scenarios of uneven slots hold no alert, and one of two failed slots in a row has it."""
    (rule,) = [r for r in rules() if r["alert"] == "CrontaskTaskNoRecentSuccess"]
    assert "crontask_task_slot_before_last_timestamp_seconds" in rule["expr"]
    assert "suspended" not in rule["annotations"]["description"]  # it has no slots, no alert
    cases = {c["name"]: c for c in yaml.safe_load(RULE_TESTS.read_text())["tests"]}

    def checks(name: str) -> list[dict[str, Any]]:
        found = cases[name]["alert_rule_test"]
        return [c for c in found if c["alertname"] == "CrontaskTaskNoRecentSuccess"]

    for name in UNEVEN_SLOTS:
        assert checks(name), name
        assert all(not check["exp_alerts"] for check in checks(name)), name
    assert any(check["exp_alerts"] for check in checks(TWO_FAILED_SLOTS))


KEEPS_FAILING = (
    "a task that keeps failing stays alerted while its next run is in progress",
    "a task every 5 minutes whose failing runs the scrapes always see in progress",
)
SUSPENDED_HUNG = "a hung run of a suspended task"


def firing(case: dict[str, Any], alertname: str) -> list[str]:
    """The eval times of ``case`` at which ``alertname`` is expected to fire."""
    return [
        c["eval_time"]
        for c in case["alert_rule_test"]
        if c["alertname"] == alertname and c["exp_alerts"]
    ]


def test_an_alert_that_has_begun_is_not_ended_by_a_run_or_a_suspension() -> None:
    """A run in progress holds CrontaskTaskNoRecentSuccess back, but not once it has begun for
    a task that failed since its last success (it would resolve at every run, or never fire
    for a task whose runs the scrapes always see); suspending a task whose run hangs leaves no
    interval, yet CrontaskTaskRunningLong stays, and a run of a task suspended from the start
    is measured against a day. Both rules read their own ALERTS series for it; promtool's
    scenarios hold them firing."""
    by_name = {r["alert"]: r for r in rules()}
    for name in ("CrontaskTaskNoRecentSuccess", "CrontaskTaskRunningLong"):
        assert f'ALERTS{{alertname="{name}"}}' in by_name[name]["expr"], name
    assert "86400" in by_name["CrontaskTaskRunningLong"]["expr"]
    cases = {c["name"]: c for c in yaml.safe_load(RULE_TESTS.read_text())["tests"]}
    for name in KEEPS_FAILING:
        assert len(firing(cases[name], "CrontaskTaskNoRecentSuccess")) >= 2, name
    suspended = cases[SUSPENDED_HUNG]
    intervals = [
        s["values"]
        for s in suspended["input_series"]
        if s["series"].startswith("crontask_task_schedule_interval_seconds")
    ]
    assert intervals
    assert all(v.endswith("stale") for v in intervals)
    assert {"16m", "1451m"} <= set(firing(suspended, "CrontaskTaskRunningLong"))


def test_the_prometheus_rule_holds_the_same_rules() -> None:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert names == ALERTS


def test_the_pod_monitor_scrapes_every_crontask_pod_as_the_rules_select() -> None:
    """With --ha each replica exports its own tasks' series: the PodMonitor must reach every
    pod of the Deployment, on the port that serves /metrics, under the rules' job label."""
    monitor = yaml.safe_load((MONITORING / "podmonitor.yaml").read_text())
    deployment = yaml.safe_load((ROOT / "deploy" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]
    assert monitor["kind"] == "PodMonitor"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert wanted.items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in ports
    assert endpoint["path"] == "/metrics"
    # The job label comes from this pod label's value: the rules select job="crontask".
    assert pod["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "crontask"
    assert 'job="crontask"' in " ".join(rule_queries())


def test_the_pod_monitor_shows_how_to_scrape_with_metrics_require_auth() -> None:
    """With metricsRequireAuth: true every scrape without a token is a 401 (up 0, every alert
    blind): the PodMonitor carries the endpoint's authorization, commented out, which uncommented
    is a Bearer credential from the Secret its kubectl line makes."""
    text = (MONITORING / "podmonitor.yaml").read_text()
    start = text.index("      # authorization:\n")
    block = [line for line in text[start:].splitlines() if line.startswith("      # ")]
    endpoint = yaml.safe_load("\n".join(line.replace("# ", "", 1) for line in block))
    credentials = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer"
    made = f"create secret generic {credentials['name']} --from-literal={credentials['key']}="
    assert made in text


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names, grouping lists, ranges or Grafana variables."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\$\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        name, call = match.groups()
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def test_metric_names_are_found_in_queries() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job",x="y{z}"}[5m]))) '
        "> 2 * b or c unless on(task) d offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            inner = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query["query"])
            assert inner is not None, query
            queries.append(inner.group(1))
    return queries


def test_the_dashboard_counts_what_two_replicas_export_once(tmp_path: Path) -> None:
    """With --ha every replica reads every source (each exports the same definition errors),
    and at a handover the old owner and the new one may both export a task for a scrape or
    two: the stats count a task or an error once. Checked with promtool on the panels' own
    queries."""
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    stat = {p["title"]: p["targets"][0]["expr"] for p in dashboard["panels"] if p.get("targets")}
    failure = "crontask_task_last_failure_timestamp_seconds"
    series = [
        ('crontask_definition_errors{job="crontask",instance="%s",source="file"}', "1x10"),
        (failure + '{job="crontask",instance="%s",task="ops/backup"}', "600x10"),
    ]
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": name % instance, "values": values}
                    for name, values in series
                    for instance in ("a:8080", "b:8080")
                ],
                "promql_expr_test": [
                    {
                        "expr": stat[title].replace("$job", "crontask"),
                        "eval_time": "5m",
                        "exp_samples": [{"labels": "{}", "value": 1}],
                    }
                    for title in ("Definition errors", "Failing tasks")
                ],
            }
        ],
    }
    (tmp_path / "dashboard.test.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool(), "test", "rules", "dashboard.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def rule_queries() -> list[str]:
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_the_dashboard_has_the_panels_people_look_for() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    assert {
        "Tasks by state",
        "Failing tasks",
        "Runs per second by status",
        "Start delay",
        "Run durations",
        "Tasks",
    } <= titles
    table = next(p for p in dashboard["panels"] if p["title"] == "Tasks")
    exprs = " ".join(t["expr"] for t in table["targets"])
    assert "crontask_task_last_success_timestamp_seconds" in exprs
    assert "crontask_task_next_run_timestamp_seconds" in exprs
    assert "crontask_task_running_since_timestamp_seconds" in exprs


@pytest.fixture(scope="module")
def live_metrics(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Sample names of a real ``crontask run`` that has run, failed, skipped and notified, and
    has a run in progress."""
    folder = tmp_path_factory.mktemp("live")
    tasks = folder / "tasks"
    tasks.mkdir()
    (folder / "notifications.yaml").write_text(
        "receivers:\n"
        f"  - {{name: hook, type: generic, url: 'http://127.0.0.1:{free_port()}/'}}\n"
        "routes:\n  - {receiver: hook, events: [failed]}\n"
    )
    (tasks / "ok.yaml").write_text(task("ok", ["true"]))
    (tasks / "bad.yaml").write_text(task("bad", ["false"]))
    (tasks / "slow.yaml").write_text(task("slow", ["sleep", "300"]))
    (tasks / "broken.yaml").write_text(task("broken", ["true"], schedule="* 25 * * *"))
    app = Crontask(folder, tasks, ["--notifications", str(folder / "notifications.yaml")])
    app.start()
    try:

        def complete() -> set[str]:
            text = httpx.get(f"{app.server}/metrics").text
            names = {
                sample.name
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }
            wanted = {
                "crontask_task_last_success_timestamp_seconds",
                "crontask_task_last_failure_timestamp_seconds",
                "crontask_task_running_since_timestamp_seconds",
                "crontask_notifications_total",
                "crontask_definition_errors",
                "crontask_run_store_up",  # from the store's first answer to its check
            }
            return names if wanted <= names else set()

        return wait_for("a success, a failure and a notification in /metrics", complete, 30)
    finally:
        app.stop()


def replica_metrics() -> set[str]:
    """The series only --ha exports (it needs PostgreSQL): from the same exposition code. The
    clock's offset once a renewal estimated it (none with Kubernetes Leases)."""
    metrics = Metrics()
    metrics.replicas(3, False, clock_offset=0.0)
    text = metrics.render()[0].decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


@dataclasses.dataclass(frozen=True)
class _GitSource:
    kind: str = "git"
    revision: str | None = "0" * 40
    last_sync: datetime | None = datetime(2026, 11, 26, tzinfo=UTC)
    sync_failures: int = 1


def git_source_metrics() -> set[str]:
    """The series only a git source exports (the live crontask reads a folder): from the same
    exposition code."""
    text = Metrics(sources=lambda: [_GitSource()]).render()[0].decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def single_lease_metrics() -> set[str]:
    """The series only --kubernetes without --ha exports (the Lease crontask-single): from the
    same exposition code."""
    metrics = Metrics()
    metrics.single_lease(True)
    text = metrics.render()[0].decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.mark.slow
@pytest.mark.e2e
def test_every_query_names_only_exported_metrics(live_metrics: set[str]) -> None:
    exported = (
        live_metrics
        | replica_metrics()
        | git_source_metrics()
        | single_lease_metrics()
        | PROMETHEUS_OWN
    )
    assert "crontask_members_disagreeing" in replica_metrics()
    assert "crontask_single_lease_conflict" in single_lease_metrics()
    assert {"crontask_members", "crontask_replica_fenced"} <= replica_metrics()
    assert {
        "crontask_source_last_sync_timestamp_seconds",
        "crontask_source_sync_errors_total",
    } <= git_source_metrics()
    for expr in dashboard_queries() + rule_queries():
        unknown = metric_names(expr) - exported
        assert not unknown, f"{unknown} in {expr!r} are not exported"
    named = set().union(*(metric_names(e) for e in dashboard_queries()))
    assert len(named) >= 12  # the test reads real queries, not an empty list
