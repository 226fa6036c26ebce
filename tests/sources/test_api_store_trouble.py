"""The API's stored tasks when their store gives trouble: the folder of API tasks gone keeps the
tasks read before and the error shows in the source's status, and the other sources' changes
are applied all the same (a pass that failed for it held every folder edit back); a stored task
that no longer reads keeps its last good definition, flagged, as a broken file does (it was
removed); a write then is a 503 (it was a 500)."""

from __future__ import annotations

import shutil
from pathlib import Path

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.writes import stored_text
from reconciler.core.model import CronTask
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.api import ApiSource, ApiTaskFiles
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from tests.api.test_problems import assert_problem
from tests.api.test_stored_tasks import JSON, LiveService, body
from tests.controller.test_reconcile import T0, doc
from tests.helpers import local_actions, task_doc


def stored_task(files: ApiTaskFiles, name: str, *args: str) -> None:
    task = CronTask.model_validate(task_doc(name, command={"args": ["echo", *args]}))
    files.write(task.key, stored_text(task))


def args_in_force(reconciler: Reconciler, key: str) -> list[str]:
    task = reconciler.desired.tasks[key].task
    assert task.spec.command is not None
    return task.spec.command.args


def test_the_api_tasks_folder_gone_holds_back_no_other_source(tmp_path: Path) -> None:
    folder, api_root = tmp_path / "tasks", tmp_path / "api-tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text(doc("a"))
    files = ApiTaskFiles(api_root)
    stored_task(files, "b", "v1")
    api = ApiSource(files)
    idle = Dispatcher(MemoryRunStore(), owner="h:1:x", actions=local_actions())
    reconciler = Reconciler(
        [api, DirectorySource([folder])], MemoryScheduler(lambda key, at: None, T0), idle
    )
    reconciler.refresh(None)
    assert set(reconciler.desired.tasks) == {"default/a", "default/b"}

    shutil.rmtree(api_root)
    (folder / "c.yaml").write_text(doc("c"))
    reconciler.refresh({"api": {"default/b"}, "file": {str((folder / "c.yaml").absolute())}})
    assert set(reconciler.desired.tasks) == {"default/a", "default/b", "default/c"}
    error = api.status().last_error
    assert error is not None
    assert "is gone" in error

    reconciler.refresh(None)  # a resync: the same, the API's task kept
    assert set(reconciler.desired.tasks) == {"default/a", "default/b", "default/c"}
    api_root.mkdir()  # back (empty: "create it empty to delete them all")
    reconciler.refresh(None)
    assert set(reconciler.desired.tasks) == {"default/a", "default/c"}
    assert api.status().last_error is None


def test_a_stored_task_that_no_longer_reads_keeps_its_last_good_definition(
    tmp_path: Path,
) -> None:
    files = ApiTaskFiles(tmp_path / "api-tasks")
    stored_task(files, "b", "v1")
    api = ApiSource(files)
    api.refresh(None)
    files.path("default/b").write_bytes(b"\xff\xfe not UTF-8\n")
    assert api.refresh(None) == {"default/b"}
    (kept,) = api.definitions()
    assert kept.key == "default/b"
    assert kept.error is not None
    (error,) = api.errors()
    assert "UTF-8" in str(error)
    assert kept.task.spec.command is not None
    assert kept.task.spec.command.args == ["echo", "v1"]


def test_a_write_while_the_folder_is_gone_is_a_503(tmp_path: Path) -> None:
    root = tmp_path / "api-tasks"
    app = LiveService(root)
    try:
        with app.client() as client:
            created = client.put("/api/v1/tasks/default/one", content=body("one"), headers=JSON)
            assert created.status_code == 201, created.text
            shutil.rmtree(root)
            refused = client.put("/api/v1/tasks/default/two", content=body("two"), headers=JSON)
            assert_problem(refused, 503)
            # The task read before is still the API's, in force.
            assert client.get("/api/v1/tasks/default/one").status_code == 200
    finally:
        app.stop()
