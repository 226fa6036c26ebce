"""What the API stores reads back: the API source reads stored texts with a task file's bounds,
with room for every task the API accepts, and a write is checked with that reader before it is
stored (a text it would refuse is a 422 and nothing is written)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.controller import writes
from reconciler.core.desired import DefinitionError, Location, SourceKind
from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield instance
    instance.stop()


def job_task(args: int) -> dict[str, Any]:
    container = {"name": "c", "image": "busybox", "args": ["a"] * args}
    job = {"spec": {"template": {"spec": {"containers": [container]}}}}
    document = task_doc("job", "ops", job=job)
    del document["spec"]["command"]
    return document


def test_a_job_spec_of_many_values_reads_back(live: LiveApi) -> None:
    # 15 000 values: over a task file's 10 000, within what a JobSpec may count.
    with live.client() as client:
        created = client.post("/api/v1/tasks", json=job_task(15_000))
        assert created.status_code == 201, created.text[:300]
    assert live.resync().ok
    assert live.scheduled() == {"ops/job": "api"}
    assert live.api.errors() == []


def test_a_task_the_reader_would_refuse_is_422_and_not_stored(
    live: LiveApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(key: str, text: str) -> DefinitionError:
        where = Location(SourceKind.API, f"/api/v1/tasks/{key}", 9, 3)
        return DefinitionError(where, "more than 10000 values in one document", key)

    monkeypatch.setattr(writes, "read_stored", refuse)
    with live.client() as client:
        refused = client.post("/api/v1/tasks", json=task_doc("x", "ops"))
    problem = assert_problem(refused, 422, "invalid-definition")
    assert problem["detail"] == "as stored YAML, more than 10000 values in one document"
    assert not files_root(tmp_path).exists()
