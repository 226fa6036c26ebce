"""The API holds a bounded number of tasks of bounded total size (``core.api_tasks``): one more
is a 507 and nothing is stored, while replacing a task with one no larger, or deleting one,
always works. A list page is bounded in bytes as well as in count, so a page of large tasks
ends early with a continue token, and the pages together list every task."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.api import routes_tasks
from reconciler.core import api_tasks
from reconciler.sources.api import ApiTaskFiles
from tests.api.conftest import AppFactory, TestClient
from tests.api.fakes import FakeRuntime, view
from tests.api.live_api import LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield instance
    instance.stop()


def doc(name: str, size: int = 0) -> dict[str, Any]:
    return task_doc(name, command={"args": ["echo", "x" * size]})


def test_one_task_more_than_the_limit_is_507(
    live: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_tasks, "MAX_TASKS", 2)
    with live.client() as client:
        assert client.post("/api/v1/tasks", json=doc("a")).status_code == 201
        assert client.put("/api/v1/tasks/default/b", json=doc("b")).status_code == 201
        refused = client.post("/api/v1/tasks", json=doc("c"))
        problem = assert_problem(refused, 507, "no-room")
        assert problem["detail"].startswith("the API holds 2 tasks, its limit is 2: task default/c")
        assert_problem(client.put("/api/v1/tasks/default/c", json=doc("c")), 507)
        assert client.put("/api/v1/tasks/default/b", json=doc("b", 10)).status_code == 200
        assert client.delete("/api/v1/tasks/default/a").status_code == 204
        assert client.post("/api/v1/tasks", json=doc("c")).status_code == 201
    assert sorted(live.scheduled()) == ["default/b", "default/c"]


def test_tasks_over_the_total_size_are_507(live: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_tasks, "MAX_TOTAL_BYTES", 3584)  # tasks are ~400 bytes + args
    with live.client() as client:
        assert client.post("/api/v1/tasks", json=doc("a", 1000)).status_code == 201
        assert client.post("/api/v1/tasks", json=doc("b", 1000)).status_code == 201
        problem = assert_problem(client.post("/api/v1/tasks", json=doc("c", 1000)), 507)
        assert "over the limit of" in problem["detail"]
        grown = client.put("/api/v1/tasks/default/b", json=doc("b", 2000))
        assert_problem(grown, 507)
        assert client.put("/api/v1/tasks/default/b", json=doc("b", 10)).status_code == 200
        assert client.post("/api/v1/tasks", json=doc("c", 1000)).status_code == 201
    assert sorted(live.scheduled()) == ["default/a", "default/b", "default/c"]


def test_a_page_of_large_tasks_ends_early_and_the_pages_list_them_all(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = {"args": ["echo", "x" * 1000]}
    runtime = FakeRuntime([view(f"t{i:02}", command=big) for i in range(12)])
    one = len(json.dumps(view("t00", command=big).resource, separators=(",", ":")))
    monkeypatch.setattr(routes_tasks, "TASKS_PAGE_BYTES", 4 * one + 10)  # 4 of these tasks
    keys: list[str] = []
    sizes: list[int] = []
    with TestClient(make_app(rt=runtime)) as client:
        token = None
        while True:
            params: dict[str, Any] = {"limit": 100} | ({"continue": token} if token else {})
            page = client.get("/api/v1/tasks", params=params).json()
            keys += [t["key"] for t in page["items"]]
            sizes.append(len(page["items"]))
            token = page["metadata"]["continue"]
            if token is None:
                break
    assert keys == [f"default/t{i:02}" for i in range(12)]
    assert sizes == [4, 4, 4]
