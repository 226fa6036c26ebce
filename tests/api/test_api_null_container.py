"""A task created through the API with a null container: 422 at the entry, not a 500 (the
JobSpec check raised AttributeError on it)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime
from tests.api.test_problems import assert_problem


def job_task(containers: list[Any], field: str = "containers") -> dict[str, Any]:
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
    pod[field] = containers
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "evil", "namespace": "team-b"},
        "spec": {"schedule": "0 3 * * *", "job": {"spec": {"template": {"spec": pod}}}},
    }


@pytest.mark.parametrize("field", ["containers", "initContainers"])
def test_creating_a_task_with_a_null_container_is_422(
    field: str, client: TestClient, runtime: FakeRuntime
) -> None:
    created = client.post("/api/v1/tasks", json=job_task([None], field))
    body = assert_problem(created, 422, "invalid-definition")
    (error,) = body["errors"]
    assert error["location"] == [
        "body", "spec", "job", "spec", "template", "spec", field, 0
    ]  # fmt: skip
    assert error["message"] == "Invalid value: must be an object (got null)"
    assert runtime.task("team-b/evil") is None

    replaced = client.put("/api/v1/tasks/team-b/evil", json=job_task([None], field))
    assert_problem(replaced, 422, "invalid-definition")
