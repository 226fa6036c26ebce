"""A definition that has never been valid has no task view (GET of its key is a 404): its
error is in the API all the same, in the list of its source, as the log and the status page's
/sources show it. Against the real service over a real folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.api.problems import MAX_ERRORS
from reconciler.sources.api import ApiTaskFiles
from reconciler.sources.files import DirectorySource
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc

NEW_BROKEN = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: newbroken
spec:
  schedule: "0 25 * * *"
  command:
    args: ["true"]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "good.yaml").write_text(yaml.safe_dump(task_doc("good")))
    return tasks


@pytest.fixture
def live(tmp_path: Path, folder: Path) -> Iterator[LiveApi]:
    (folder / "newbroken.yaml").write_text(NEW_BROKEN)
    (folder / "unparsable.yaml").write_text("spec: [unclosed\n")
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), others=[DirectorySource([folder])])
    yield instance
    instance.stop()


def file_source(live: LiveApi) -> dict[str, object]:
    with live.client() as client:
        assert client.get("/api/v1/tasks/default/newbroken").status_code == 404
        items = client.get("/api/v1/sources").json()["items"]
    [found] = [item for item in items if item["kind"] == "file"]
    assert isinstance(found, dict)
    return found


def test_a_task_never_valid_has_its_error_in_the_list_of_its_source(
    live: LiveApi, folder: Path
) -> None:
    source = file_source(live)
    problems = source["problems"]
    assert isinstance(problems, list)
    assert f"{folder}/newbroken.yaml:6:16: spec.schedule: hour field: 25 is out of range 0-23" in (
        problems
    )
    assert any(p.startswith(f"{folder}/unparsable.yaml:") for p in problems), problems
    assert (source["errors"], source["moreProblems"], source["tasks"]) == (2, 0, 1)


def test_the_list_is_bounded_and_says_how_many_more(live: LiveApi, folder: Path) -> None:
    for n in range(MAX_ERRORS + 3):
        (folder / f"bad-{n:02}.yaml").write_text(NEW_BROKEN.replace("newbroken", f"bad-{n:02}"))
    live.resync()
    source = file_source(live)
    assert source["errors"] == MAX_ERRORS + 5
    assert isinstance(source["problems"], list)
    assert len(source["problems"]) == MAX_ERRORS
    assert source["moreProblems"] == 5
