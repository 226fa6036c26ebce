"""``/api/v1/runs`` and manual triggers."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from reconciler.core.runs import ContainerResult, JobDetails, RunStatus, Trigger
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record
from tests.api.test_problems import assert_problem

RUN_FIELDS = {
    "id", "task", "attempt", "trigger", "status", "reason", "message", "scheduledTime",
    "startTime", "completionTime", "durationMs", "exitCode",
}  # fmt: skip


def test_trigger_then_skip(client: TestClient) -> None:
    first = client.post("/api/v1/tasks/default/hello/runs")
    assert first.status_code == 202
    run = first.json()
    assert set(run) == RUN_FIELDS
    assert run["status"] == "running"
    assert run["trigger"] == "manual"
    assert first.headers["location"] == f"/api/v1/runs/{run['id']}"

    second = client.post("/api/v1/tasks/default/hello/runs")
    assert second.status_code == 202
    skipped = second.json()
    assert skipped["status"] == "skipped"
    assert skipped["reason"] == "ConcurrencyForbid"
    assert "skipped" in skipped["message"]

    task = client.get("/api/v1/tasks/default/hello").json()
    assert task["running"] == [run["id"]]
    assert_problem(client.post("/api/v1/tasks/default/nope/runs"), 404)


def seed(runtime: FakeRuntime, n: int) -> list[str]:
    ids = []
    for i in range(n):
        status = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED][i % 3]
        r = record("ops/backup", T0 - timedelta(hours=i + 1), status)
        runtime.store.claim(r)
        ids.append(r.id)
    return ids


def walk(client: TestClient, query: str) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    pages = 0
    url = f"/api/v1/runs?{query}"
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        pages += 1
        assert body["nextCursor"] == body["metadata"]["continue"]  # the deprecated name
        if body["metadata"]["continue"] is None:
            return items, pages
        url = f"/api/v1/runs?{query}&continue={body['metadata']['continue']}"


def test_pagination_walks_every_run_once(client: TestClient, runtime: FakeRuntime) -> None:
    ids = seed(runtime, 23)
    items, pages = walk(client, "task=ops/backup&limit=5")
    assert pages == 5
    assert [i["id"] for i in items] == ids  # newest first, each once
    everything, _ = walk(client, "limit=7")
    assert len(everything) == 24  # plus default/hello's


def test_filters(client: TestClient, runtime: FakeRuntime) -> None:
    seed(runtime, 9)
    failed, _ = walk(client, "status=failed")
    assert {i["status"] for i in failed} == {"failed"}
    assert len(failed) == 3
    since = (T0 - timedelta(hours=3)).isoformat()
    until = (T0 - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    window, _ = walk(client, f"task=ops/backup&since={since.replace('+', '%2B')}&until={until}")
    assert [i["scheduledTime"] for i in window] == ["2026-11-26T23:00:00Z", "2026-11-26T22:00:00Z"]
    manual, _ = walk(client, f"trigger={Trigger.MANUAL}")
    assert manual == []
    assert client.get("/api/v1/runs?limit=1000").status_code == 200
    assert_problem(client.get("/api/v1/runs?limit=1001"), 422)


def test_the_former_cursor_parameter_still_pages(client: TestClient, runtime: FakeRuntime) -> None:
    ids = seed(runtime, 5)
    first = client.get("/api/v1/runs?task=ops/backup&limit=3").json()
    token = first["metadata"]["continue"]
    second = client.get(f"/api/v1/runs?task=ops/backup&limit=3&cursor={token}").json()
    assert [i["id"] for i in first["items"] + second["items"]] == ids
    both = client.get(f"/api/v1/runs?task=ops/backup&cursor={token}&continue={token}")
    assert both.status_code == 200
    assert_problem(client.get(f"/api/v1/runs?cursor={token}&continue=x{token}"), 422)


def test_a_page_is_500_runs_by_default(client: TestClient, runtime: FakeRuntime) -> None:
    seed(runtime, 501)
    body = client.get("/api/v1/runs").json()
    assert len(body["items"]) == 500
    assert body["metadata"]["continue"] is not None


def test_one_run_with_every_attempt(client: TestClient, runtime: FakeRuntime) -> None:
    first = record("ops/backup", T0, RunStatus.FAILED, output="boom\n")
    runtime.store.claim(first)
    runtime.store.claim(
        record("ops/backup", T0, RunStatus.SUCCEEDED, attempt=2, trigger=Trigger.RETRY)
    )
    body = client.get(f"/api/v1/runs/{first.id}").json()
    assert body["id"] == first.id
    assert body["task"] == "ops/backup"
    assert [(a["attempt"], a["status"], a["output"]) for a in body["attempts"]] == [
        (1, "failed", "boom\n"),
        (2, "succeeded", "hello\n"),
    ]
    assert set(body["attempts"][0]) == RUN_FIELDS | {"output", "job"}
    assert body["attempts"][0]["durationMs"] == 2000
    assert_problem(client.get("/api/v1/runs/ops.backup.19700101T000000Z"), 404, "not-found")


def test_health_and_readiness(client: TestClient, runtime: FakeRuntime) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"sources": True, "scheduler": True, "store": True}
    runtime.checks["store"] = False
    body = assert_problem(client.get("/readyz"), 503, "unavailable")
    assert body["checks"]["store"] is False
    assert body["detail"] == "not ready: store"


def test_a_job_attempt_names_its_job_in_the_api_spelling(
    client: TestClient, runtime: FakeRuntime
) -> None:
    job = JobDetails(
        namespace="ops",
        name="backup-1796090400",
        uid="u-1",
        started_at=T0,
        log_error="pods/log: HTTP 403 Forbidden",
        containers=(ContainerResult("main", exit_code=2, reason="Error"),),
    )
    run = dataclasses.replace(record("ops/backup", T0, RunStatus.FAILED), job=job)
    runtime.store.claim(run)
    attempt = client.get(f"/api/v1/runs/{run.id}").json()["attempts"][0]
    assert attempt["job"] == {
        "namespace": "ops",
        "name": "backup-1796090400",
        "uid": "u-1",
        "logError": "pods/log: HTTP 403 Forbidden",
        "startedAt": "2026-11-27T01:00:00+00:00",
        "containers": [{"name": "main", "exitCode": 2, "reason": "Error"}],
    }
