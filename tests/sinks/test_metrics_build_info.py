"""``crontask_build_info``: one gauge at 1 whose labels say which crontask and which Python a
process runs, so that the replicas of a rolling update (``--ha``) can be told apart in
Prometheus. Read as ``/metrics`` renders it and as a prometheus_client registry collects it."""

from __future__ import annotations

import platform

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.sinks.metrics import Metrics
from tests.cli.test_version import declared

EXPECTED = {"version": declared(), "python": platform.python_version()}


def build_info(text: str) -> list[tuple[dict[str, str], float]]:
    found = [f for f in text_string_to_metric_families(text) if f.name == "crontask_build_info"]
    assert len(found) == 1, [f.name for f in text_string_to_metric_families(text)]
    assert found[0].type == "gauge"
    return [(s.labels, s.value) for s in found[0].samples]


def test_render_exports_the_version_and_python_at_one() -> None:
    body, _ = Metrics().render()  # no tasks, no --ha: it is there from the start
    assert build_info(body.decode()) == [(EXPECTED, 1.0)]


def test_a_registry_collects_it_too() -> None:
    metrics = Metrics()
    assert build_info(generate_latest(metrics.registry).decode()) == [(EXPECTED, 1.0)]
