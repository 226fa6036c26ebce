"""Pages of the task list through the real service: a task removed while a page is being made
does not cut the page short, which would tell the client that nothing follows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_stored_tasks import JSON, LiveService
from tests.helpers import task_doc

POD = {"containers": [{"name": "main", "image": "busybox"}]}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveService]:
    instance = LiveService(tmp_path / "api-tasks")
    yield instance
    instance.stop()


def removed_between_the_hops(live: LiveService, gone: str) -> list[list[str]]:
    """The service picks a page's keys from one look at the tasks and makes their views in a
    second: ``gone`` is removed between the two, the first time it is picked."""
    service: Any = live.service
    real: Callable[[Sequence[str]], dict[str, Any]] = service._snapshot
    asked: list[list[str]] = []

    def snapshot(keys: Sequence[str]) -> dict[str, Any]:
        asked.append(list(keys))
        entries = real(keys)
        if len(asked) == 1:
            entries.pop(gone, None)
        return entries

    service._snapshot = snapshot
    return asked


def test_a_task_removed_while_a_page_is_made_does_not_end_the_list(live: LiveService) -> None:
    with live.client() as client:
        for n in range(6):
            sent = json.dumps(task_doc(f"k{n}", namespace="pg")).encode()
            created = client.put(f"/api/v1/tasks/pg/k{n}", content=sent, headers=JSON)
            assert created.status_code == 201, created.text
        asked = removed_between_the_hops(live, "pg/k1")
        page = client.get("/api/v1/tasks", params={"namespace": "pg", "limit": 2}).json()
        assert [t["key"] for t in page["items"]] == ["pg/k0", "pg/k2"]
        assert page["metadata"]["continue"] is not None  # k3 and more follow
        assert asked == [["pg/k0", "pg/k1", "pg/k2"], ["pg/k3"]]  # the next key took its place
        rest = client.get(
            "/api/v1/tasks",
            params={"namespace": "pg", "limit": 10, "continue": page["metadata"]["continue"]},
        ).json()
        assert [t["key"] for t in rest["items"]] == ["pg/k3", "pg/k4", "pg/k5"]
        assert rest["metadata"]["continue"] is None


def test_a_job_task_is_refused_before_it_is_stored_without_kubernetes(tmp_path: Path) -> None:
    """Stored, it would be an error of its key (a 500 after the fact), and a task it replaced
    would stop running meanwhile."""
    live = LiveService(tmp_path / "api-tasks", jobs=False)
    try:
        job = task_doc("j", namespace="pg", job={"spec": {"template": {"spec": POD}}})
        del job["spec"]["command"]
        with live.client() as client:
            created = client.post("/api/v1/tasks", content=json.dumps(job), headers=JSON)
            assert created.status_code == 422, created.text
            problem = created.json()
            assert problem["errors"][0]["location"] == ["body", "spec", "job"]
            assert "no Kubernetes connection" in problem["errors"][0]["message"]
            sent = json.dumps(task_doc("j", namespace="pg")).encode()
            assert client.put("/api/v1/tasks/pg/j", content=sent, headers=JSON).status_code == 201
            replaced = client.put("/api/v1/tasks/pg/j", content=json.dumps(job), headers=JSON)
            assert replaced.status_code == 422, replaced.text
            kept = client.get("/api/v1/tasks/pg/j").json()
            assert kept["resource"]["spec"]["command"]["args"] == ["true"]
        assert sorted(p.name for p in (tmp_path / "api-tasks").rglob("*.yaml")) == ["j.yaml"]
    finally:
        live.stop()
