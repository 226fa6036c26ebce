"""The dashboard's "Tasks" table has a row for every task crontask exports, as the README says:
also a task that has no timestamp, duration or interval to show (suspended before it ever ended
a run: no next slot, no interval, no last success, failure or duration). Its rows are the union
of its queries' label sets (Grafana's merge), so the union is what is checked, with promtool on
the panel's own queries over what a real exposition holds."""

from __future__ import annotations

from pathlib import Path

from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import MemoryTasks, Metrics
from tests.helpers import definition
from tests.sinks.test_metrics import NEXT, T0, run, samples
from tests.sinks.test_metrics_dashboard_task_failures import promtool_test, table

MINUTES = 5  # scrapes, a minute apart, of the same exposition


def test_a_suspended_task_that_never_ran_has_a_row(tmp_path: Path) -> None:
    tasks = MemoryTasks()
    tasks.set(definition("ran"), NEXT, 60.0)
    tasks.set(definition("new"), NEXT, 60.0)
    tasks.set(definition("paused", suspend=True))  # no next slot while suspended
    metrics = Metrics(tasks)
    run(metrics, "default/ran", RunStatus.SUCCEEDED, at=T0)
    series = [
        {
            "series": name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels)) + "}",
            "values": f"{value!r}x{MINUTES}",
        }
        for (name, labels), value in samples(metrics).items()
    ]
    for each in series:  # as Prometheus adds them to what it scrapes
        each["series"] = each["series"].replace("{", '{job="crontask",', 1).replace(",}", "}")
    rows = " or ".join(f"({query})" for query in table().values())
    checks = [
        {
            "expr": f"count by (job, namespace, task) ({rows})",
            "eval_time": f"{MINUTES - 1}m",
            "exp_samples": [
                {"labels": f'{{job="crontask",task="default/{name}"}}', "value": 1}
                for name in ("new", "paused", "ran")
            ],
        }
    ]
    promtool_test(tmp_path, series, checks)
