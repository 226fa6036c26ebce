"""``reconciler.sinks.metrics``: names, zeros up front, movement, removal; and ``/metrics``."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record, view


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def test_every_series_starts_at_zero() -> None:
    m = Metrics()
    m.set_tasks([view("a"), view("b", kind="git", suspended=True)])
    assert value(m, "crontask_tasks", source="file", state="Ready") == 1
    assert value(m, "crontask_tasks", source="git", state="Suspended") == 1
    assert value(m, "crontask_tasks", source="kubernetes", state="Error") == 0
    assert value(m, "crontask_definition_errors", source="file") == 0
    assert value(m, "crontask_reconcile_total", result="error") == 0
    for status in ("succeeded", "failed", "timedOut", "skipped", "interrupted"):
        assert value(m, "crontask_runs_total", task="default/a", status=status) == 0
    assert value(m, "crontask_run_duration_seconds_count", task="default/a") == 0
    assert value(m, "crontask_running_runs", task="default/a") == 0
    assert value(m, "crontask_task_last_success_timestamp_seconds", task="default/a") == 0
    assert (
        value(m, "crontask_task_next_run_timestamp_seconds", task="default/a")
        == (T0 + timedelta(hours=1)).timestamp()
    )
    assert value(m, "crontask_task_next_run_timestamp_seconds", task="default/b") == 0
    assert value(m, "crontask_run_start_delay_seconds_count") == 0
    assert value(m, "crontask_reconcile_duration_seconds_count") == 0


def test_runs_move_the_metrics() -> None:
    m = Metrics()
    m.set_tasks([view("a")])
    started = dataclasses.replace(
        record("default/a", T0, RunStatus.RUNNING), started_at=T0 + timedelta(seconds=2)
    )
    m.run_started(started)
    assert value(m, "crontask_running_runs", task="default/a") == 1
    assert value(m, "crontask_run_start_delay_seconds_sum") == 2.0
    m.run_started(started)  # idempotent per run id
    assert value(m, "crontask_running_runs", task="default/a") == 1

    finished = record("default/a", T0, RunStatus.SUCCEEDED)
    m.run_finished(finished)
    assert value(m, "crontask_running_runs", task="default/a") == 0
    assert value(m, "crontask_runs_total", task="default/a", status="succeeded") == 1
    assert value(m, "crontask_run_duration_seconds_count", task="default/a") == 1
    assert value(m, "crontask_run_duration_seconds_sum", task="default/a") == 2.0
    assert finished.finished_at is not None
    assert value(m, "crontask_task_last_success_timestamp_seconds", task="default/a") == (
        finished.finished_at.timestamp()
    )
    m.run_finished(record("default/a", T0 + timedelta(minutes=1), RunStatus.SKIPPED))
    assert value(m, "crontask_runs_total", task="default/a", status="skipped") == 1

    m.reconciled(False, 0.25, {"file": 2})
    m.reconciled(True, 0.01, {})
    assert value(m, "crontask_reconcile_total", result="error") == 1
    assert value(m, "crontask_reconcile_total", result="success") == 1
    assert value(m, "crontask_reconcile_duration_seconds_count") == 2
    assert value(m, "crontask_definition_errors", source="file") == 0  # the last pass


def test_removed_tasks_lose_their_series() -> None:
    m = Metrics()
    m.set_tasks([view("a"), view("b")])
    m.run_finished(record("default/b", T0, RunStatus.FAILED))
    m.set_tasks([view("a")])
    names = {(n, dict(labels).get("task")) for n, labels in samples(m)}
    assert not any(task == "default/b" for _, task in names)
    assert ("crontask_runs_total", "default/a") in names


def test_instances_do_not_share_a_registry() -> None:
    one, two = Metrics(), Metrics()
    one.reconciled(True, 0.1, {})
    assert value(two, "crontask_reconcile_total", result="success") == 0


def test_metrics_endpoint(client: TestClient, runtime: FakeRuntime) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "crontask_tasks", "crontask_definition_errors", "crontask_reconcile_total",
        "crontask_reconcile_duration_seconds", "crontask_runs_total",
        "crontask_run_duration_seconds", "crontask_run_start_delay_seconds",
        "crontask_task_last_success_timestamp_seconds",
        "crontask_task_next_run_timestamp_seconds", "crontask_running_runs",
    ):  # fmt: skip
        assert f"# TYPE {name} " in text, name
    assert 'crontask_tasks{source="git",state="Ready"} 1.0' in text
    client.post("/api/v1/tasks/default/hello/runs")
    assert 'crontask_running_runs{task="default/hello"} 1.0' in client.get("/metrics").text
