"""A task's view follows its declaration when only what does not change the schedule changed:
a file renamed, a label edited, a line added above it. Such a pass leaves the scheduled job
alone (its spec is the same), so the view must not read the scheduler's older copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.sources.api import ApiTaskFiles
from reconciler.sources.files import DirectorySource
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    return tasks


@pytest.fixture
def live(tmp_path: Path, folder: Path) -> Iterator[LiveApi]:
    (folder / "a.yaml").write_text(yaml.safe_dump(task_doc("tick")))
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), others=[DirectorySource([folder])])
    yield instance
    instance.stop()


def test_a_renamed_file_and_a_new_label_show_in_the_task_and_the_list(
    live: LiveApi, folder: Path
) -> None:
    labelled = task_doc("tick")
    labelled["metadata"]["labels"] = {"team": "ops"}
    (folder / "b.yaml").write_text("# moved here\n" + yaml.safe_dump(labelled))
    (folder / "a.yaml").unlink()
    assert live.resync().plan.summary() == "0 to add, 0 to change, 0 to remove, 1 unchanged"
    with live.client() as client:
        task = client.get("/api/v1/tasks/default/tick").json()
        listed = client.get("/api/v1/tasks").json()["items"]
    assert task["source"]["location"].endswith("b.yaml:2:1")
    assert task["resource"]["metadata"]["labels"] == {"team": "ops"}
    assert [item["source"]["location"] for item in listed] == [task["source"]["location"]]
