"""``/api/v1/tasks``: listing, filters, one task, and CRUD of API-owned tasks."""

from __future__ import annotations

from datetime import datetime

from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc


def keys(client: TestClient, query: str = "") -> list[str]:
    response = client.get(f"/api/v1/tasks{query}")
    assert response.status_code == 200
    return [t["key"] for t in response.json()["items"]]


def test_list_and_filters(client: TestClient) -> None:
    assert keys(client) == [
        "default/hello",
        "default/mine",
        "default/paused",
        "ops/backup",
        "ops/broken",
    ]
    assert keys(client, "?namespace=ops") == ["ops/backup", "ops/broken"]
    assert keys(client, "?source=git") == ["ops/backup"]
    assert keys(client, "?state=Error") == ["ops/broken"]
    assert keys(client, "?state=Suspended") == ["default/paused"]
    assert keys(client, "?state=Ready&namespace=default&source=file") == ["default/hello"]
    assert_problem(client.get("/api/v1/tasks?state=Broken"), 422)


def test_one_task(client: TestClient, runtime: FakeRuntime) -> None:
    body = client.get("/api/v1/tasks/ops/backup").json()
    assert body["key"] == "ops/backup"
    assert body["source"] == {"kind": "git", "location": "ops/backup", "revision": "abc123"}
    assert body["state"] == "Ready"
    assert body["resource"]["spec"]["timeZone"] == "Europe/Berlin"
    assert body["running"] == []
    assert body["lastRun"] is None
    # next runs in the task's zone: 2026-11-27 02:00 UTC is 03:00 in Berlin (UTC+1)
    assert body["nextRuns"][0] == "2026-11-27T03:00:00+01:00"
    assert datetime.fromisoformat(body["nextRuns"][0]).utcoffset() is not None

    hello = client.get("/api/v1/tasks/default/hello").json()
    assert hello["nextRuns"][0] == "2026-11-27T02:00:00Z"
    broken = client.get("/api/v1/tasks/ops/broken").json()
    assert broken["state"] == "Error"
    assert broken["error"].startswith("tasks/broken.yaml:7:19")
    assert_problem(client.get("/api/v1/tasks/ops/nope"), 404, "not-found")


def test_create_replace_delete(client: TestClient, runtime: FakeRuntime) -> None:
    doc = task_doc("new", "team", schedule="0 3 * * *")
    created = client.post("/api/v1/tasks", json=doc)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/v1/tasks/team/new"
    assert created.json()["source"]["kind"] == "api"
    assert runtime.task("team/new") is not None

    again = client.post("/api/v1/tasks", json=doc)
    assert assert_problem(again, 409, "already-exists")["detail"].startswith("task team/new")

    doc["spec"]["schedule"] = "0 4 * * *"
    replaced = client.put("/api/v1/tasks/team/new", json=doc)
    assert replaced.status_code == 200
    assert replaced.json()["resource"]["spec"]["schedule"] == "0 4 * * *"

    fresh = task_doc("other", "team")
    del fresh["metadata"]["namespace"]  # taken from the path
    put_new = client.put("/api/v1/tasks/team/other", json=fresh)
    assert put_new.status_code == 201
    assert put_new.json()["key"] == "team/other"

    assert client.delete("/api/v1/tasks/team/new").status_code == 204
    assert runtime.task("team/new") is None
    assert_problem(client.delete("/api/v1/tasks/team/new"), 404)


def test_put_must_match_the_path(client: TestClient) -> None:
    body = assert_problem(client.put("/api/v1/tasks/team/a", json=task_doc("b", "team")), 422)
    assert body["errors"] == [
        {"location": ["body", "metadata", "name"], "message": "'b' does not match the path's 'a'"}
    ]
    body = assert_problem(client.put("/api/v1/tasks/x/a", json=task_doc("a", "team")), 422)
    assert body["errors"][0]["location"] == ["body", "metadata", "namespace"]


def test_tasks_of_other_sources_are_read_only(client: TestClient) -> None:
    expected = "ops/backup is defined by git source ops/backup at revision abc123; change it there"
    body = assert_problem(
        client.put("/api/v1/tasks/ops/backup", json=task_doc("backup", "ops")), 409
    )
    assert body["detail"] == expected
    assert body["type"] == "https://crontask.dev/problems/owned-elsewhere"
    assert assert_problem(client.delete("/api/v1/tasks/ops/backup"), 409)["detail"] == expected
    body = assert_problem(client.post("/api/v1/tasks", json=task_doc("hello")), 409)
    assert "default/hello is defined by file source tasks/hello.yaml:1:1" in body["detail"]


def test_invalid_definition_on_put(client: TestClient) -> None:
    doc = task_doc("x", spec_extra=1)
    body = assert_problem(
        client.put("/api/v1/tasks/default/x", json=doc), 422, "invalid-definition"
    )
    assert body["errors"][0]["location"] == ["body", "spec", "spec_extra"]


def test_a_bad_value_is_worded_as_a_file_would_word_it(client: TestClient) -> None:
    document = task_doc("new", retry={"limit": 200})
    response = client.post("/api/v1/tasks", json=document)
    assert response.status_code == 422
    messages = [e["message"] for e in response.json()["errors"]]
    assert messages == ["200 is out of range: allowed 0 to 100"]


def test_a_written_schedule_a_cronjob_reads_otherwise_comes_with_a_warning_header(
    client: TestClient,
) -> None:
    created = client.post("/api/v1/tasks", json=task_doc("w", "team", schedule="0 9 * * 1/2"))
    assert created.status_code == 201, created.text
    assert created.headers["warning"] == (
        "299 - \"day-of-week '1/2' runs to Sunday here (Monday, Wednesday, Friday, Sunday) and "
        "to Saturday in a Kubernetes CronJob (Monday, Wednesday, Friday): write '1-6/2,0' for "
        "these days or '1-6/2' for the CronJob's, which both read alike\""
    )
    replaced = client.put(
        "/api/v1/tasks/team/w", json=task_doc("w", "team", schedule="0\u20039 * * SAT/1")
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["warning"].startswith("299 - \"day-of-week 'SAT/1' runs to Sunday")
    plain = client.put("/api/v1/tasks/team/w", json=task_doc("w", "team", schedule="0 9 * * 1"))
    assert plain.status_code == 200
    assert "warning" not in plain.headers
    # Case folding made "5\ufb02" a "5L": the task was stored, then its Warning header (not
    # latin-1) failed the answer with a 500. Such an item is refused before anything is stored.
    ligature = task_doc("lig", "team", schedule="0 9 * * 1/2,5\ufb02")
    assert_problem(client.post("/api/v1/tasks", json=ligature), 422)
    assert_problem(client.get("/api/v1/tasks/team/lig"), 404)
