"""A write whose pass fails is answered 503, never as if it were in force: the write stays
stored (undoing it would lose it) and the next pass that works applies it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc

BROKEN = RuntimeError("the scheduler refused the job\nsecond line")


@pytest.fixture
def files(tmp_path: Path) -> ApiTaskFiles:
    return ApiTaskFiles(files_root(tmp_path))


@pytest.fixture
def live(files: ApiTaskFiles) -> Iterator[LiveApi]:
    instance = LiveApi(files, allow_empty=True)
    yield instance
    instance.stop()


def doc(*args: str) -> dict[str, Any]:
    return task_doc("tick", command={"args": ["echo", *args]})


def assert_not_in_force(answer: Any, done: str) -> None:
    problem = assert_problem(answer, 503, "not-in-force")
    assert problem["detail"] == (
        f"task default/tick {done}, but the pass that applies it failed (RuntimeError: the "
        "scheduler refused the job\\nsecond line); the next pass that works applies it "
        "(GET /api/v1/tasks/default/tick shows what is in force)"
    )


def test_a_create_whose_pass_fails_is_503_and_applied_by_the_next_pass(
    live: LiveApi, files: ApiTaskFiles
) -> None:
    live.scheduler.broken = BROKEN
    with live.client() as client:
        assert_not_in_force(client.post("/api/v1/tasks", json=doc("v1")), "is stored")
        assert list(files.load()) == ["default/tick"]  # kept: the user's write is not lost
        assert live.scheduled() == {}
        live.scheduler.broken = None
        assert live.resync().ok
        assert live.scheduled() == {"default/tick": "api"}
        assert client.get("/api/v1/tasks/default/tick").status_code == 200


def test_a_replace_whose_pass_fails_is_503_not_the_old_task_as_the_new(
    live: LiveApi, files: ApiTaskFiles
) -> None:
    with live.client() as client:
        assert client.put("/api/v1/tasks/default/tick", json=doc("v1")).status_code == 201
        live.scheduler.broken = BROKEN
        assert_not_in_force(client.put("/api/v1/tasks/default/tick", json=doc("v2")), "is stored")
        live.scheduler.broken = None
        assert live.resync().ok
        got = client.get("/api/v1/tasks/default/tick").json()
    assert got["resource"]["spec"]["command"]["args"] == ["echo", "v2"]
    command = live.scheduler.owned()["default/tick"].task.spec.command
    assert command is not None
    assert command.args == ["echo", "v2"]


def test_a_delete_whose_pass_fails_is_503(live: LiveApi, files: ApiTaskFiles) -> None:
    with live.client() as client:
        assert client.put("/api/v1/tasks/default/tick", json=doc("v1")).status_code == 201
        live.scheduler.broken = BROKEN
        answer = client.delete("/api/v1/tasks/default/tick")
        assert_not_in_force(answer, "is deleted from the store")
        assert files.load() == {}
        live.scheduler.broken = None
        assert live.resync().ok
    assert live.scheduled() == {}
