"""``/metrics`` over HTTP: the text format, gzip when asked for, and the role it needs."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.sinks.metrics import MemoryTasks, Metrics
from tests.api.conftest import STATIC_TOKENS, TestClient, bearer, write_auth
from tests.api.fakes import FakeRuntime
from tests.helpers import definition

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def metrics_with_a_run() -> Metrics:
    tasks = MemoryTasks()
    tasks.set(definition("hello"), T0 + timedelta(hours=1), 3600.0)
    metrics = Metrics(tasks)
    started = RunRecord(
        id=run_id("default/hello", T0),
        task="default/hello",
        scheduled_at=T0,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        started_at=T0,
    )
    metrics.on_run(started)
    return metrics


def test_metrics_endpoint_serves_the_text_format(runtime: FakeRuntime) -> None:
    with TestClient(create_app(runtime, auth=None, metrics=metrics_with_a_run())) as client:
        response = client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    text = response.text
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"crontask_runs", "crontask_running_runs", "crontask_run_duration_seconds"} <= families
    assert 'crontask_running_runs{task="default/hello"} 1\n' in text


def test_metrics_are_gzipped_when_the_scraper_asks(runtime: FakeRuntime) -> None:
    metrics = metrics_with_a_run()
    with TestClient(create_app(runtime, auth=None, metrics=metrics)) as client:
        plain = client.get("/metrics", headers={"Accept-Encoding": "identity"})
        # As Prometheus asks; stream the raw bytes, which httpx would otherwise decode.
        with client.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as response:
            raw = b"".join(response.iter_raw())
            encoding = response.headers.get("content-encoding")
    assert encoding == "gzip"
    assert gzip.decompress(raw) == plain.content
    assert len(raw) < len(plain.content)


def test_metrics_follow_metrics_require_auth(runtime: FakeRuntime, tmp_path: Path) -> None:
    auth = AuthConfig.load(write_auth(tmp_path, metrics_require_auth=True))
    with TestClient(create_app(runtime, auth=auth, metrics=Metrics())) as client:
        assert client.get("/metrics").status_code == 401
        viewer = bearer(STATIC_TOKENS[Role.VIEWER])
        assert client.get("/metrics", headers=viewer).status_code == 200
