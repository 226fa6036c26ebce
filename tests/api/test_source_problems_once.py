"""The lists of sources and tasks format the definition errors and conflicts once per desired
state, and only those they show: each pass replaces the desired state whole, and a request
formatted every one of them (63 000 errors: 0.16 s of CPU under the GIL a request, which made
a per-second task start late while viewers polled /sources). Against the real service over
a real folder; the formatting is counted on the real classes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.controller.service import SOURCE_PROBLEMS
from reconciler.controller.view import TaskQuery
from reconciler.core.desired import Conflict, DefinitionError
from reconciler.sources.api import ApiTaskFiles
from reconciler.sources.files import DirectorySource
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc

BROKEN_FILES = 150  # more than a source lists (SOURCE_PROBLEMS)
BROKEN = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: {name}
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
    for n in range(BROKEN_FILES):
        (tasks / f"bad-{n:03}.yaml").write_text(BROKEN.format(name=f"bad-{n:03}"))
    for n in range(3):  # a task declared twice: a conflict
        (tasks / f"twice-{n}.yaml").write_text(yaml.safe_dump(task_doc("twice")))
    return tasks


@pytest.fixture
def live(tmp_path: Path, folder: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), others=[DirectorySource([folder])])
    yield instance
    instance.stop()


@pytest.fixture
def formatted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times an error or a conflict was formatted, by class name."""
    count: Counter[str] = Counter()

    def counted(real: Callable[[Any], str], name: str) -> Callable[[Any], str]:
        def counting(self: Any) -> str:
            count[name] += 1
            return real(self)

        return counting

    monkeypatch.setattr(
        DefinitionError, "__str__", counted(DefinitionError.__str__, "DefinitionError")
    )
    monkeypatch.setattr(Conflict, "__str__", counted(Conflict.__str__, "Conflict"))
    return count


def test_the_list_of_sources_formats_once_per_desired_state(
    live: LiveApi, folder: Path, formatted: Counter[str]
) -> None:
    with live.client() as client:
        first = client.get("/api/v1/sources")
        assert first.status_code == 200
        once = sum(formatted.values())
        # Only what a source keeps: its first SOURCE_PROBLEMS (the file source here).
        assert 0 < once <= SOURCE_PROBLEMS
        second = client.get("/api/v1/sources")
        assert sum(formatted.values()) == once
    assert second.json() == first.json()
    [source] = [s for s in first.json()["items"] if s["kind"] == "file"]
    assert source["errors"] == BROKEN_FILES + 1  # and the conflict
    assert source["tasks"] == 2  # good, twice

    # A new pass is a new desired state: the next list reads it.
    for n in range(10):
        (folder / f"bad-{n:03}.yaml").unlink()
    assert live.resync().ok
    with live.client() as client:
        [source] = [s for s in client.get("/api/v1/sources").json()["items"] if s["kind"] == "file"]
    assert source["errors"] == BROKEN_FILES - 10 + 1


def test_the_list_of_tasks_formats_only_the_problems_it_shows(
    live: LiveApi, formatted: Counter[str]
) -> None:
    with live.client() as client:
        assert client.get("/api/v1/tasks", params={"state": "Error"}).status_code == 200
        once = formatted.copy()
        listed = client.get("/api/v1/tasks", params={"state": "Error"})
        assert listed.status_code == 200
    [twice] = listed.json()["items"]
    assert twice["error"].startswith("default/twice is defined more than once")
    # The first request: the sources' lines (made once for the state) and the conflict shown;
    # of the 150 errors no task carries, none past those.
    assert once["DefinitionError"] <= SOURCE_PROBLEMS
    # The second: only the conflict its one task shows.
    assert formatted - once == Counter({"Conflict": 1})


def test_the_service_formats_nothing_again_for_the_same_desired_state(
    live: LiveApi, formatted: Counter[str]
) -> None:
    # What the status page's task list reads: the sources, and the tasks in state Error.
    live.service.sources()
    live.service.tasks(TaskQuery(state="Error", limit=1000))
    before = formatted.copy()
    live.service.sources()
    live.service.tasks(TaskQuery(state="Error", limit=1000))
    assert formatted - before == Counter({"Conflict": 1})  # the one task shown
