"""A write of an API task made while the run store does not answer: the task is stored and in
force, so the answer says so (201/200, without its last run), not 503, which would have the
caller make again what is made (a create retried is a 409)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord
from reconciler.sources.api import ApiTaskFiles
from reconciler.store import StoreUnavailable
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    api = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield api
    api.stop()


def test_a_write_is_answered_as_made_while_the_store_is_down(
    live: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(task: str) -> RunRecord | None:
        raise StoreUnavailable("the store does not answer")

    monkeypatch.setattr(live.service.store, "latest", down)
    with live.client() as client:
        created = client.post("/api/v1/tasks", json=task_doc("a", "ops"))
        assert created.status_code == 201, created.text
        assert created.json()["lastRun"] is None
        replaced = client.put("/api/v1/tasks/ops/a", json=task_doc("a", "ops", suspend=True))
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["suspended"] is True
        # A read is still the store's: it has nothing to show without it.
        assert client.get("/api/v1/tasks/ops/a").status_code == 503
    monkeypatch.undo()
    with live.client() as client:
        assert client.get("/api/v1/tasks/ops/a").json()["suspended"] is True
