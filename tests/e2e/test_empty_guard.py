"""The empty-set guard holds per source under the real ``crontask run``: with a task of another
source present, a watched folder that is unmounted or moved away, or a git revision whose
``--git-path`` holds no task file (refused whole: ``gitempty``), removes none of its tasks."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_git import Repo
from tests.e2e.test_run import append, lines, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


@pytest.mark.slow
@pytest.mark.parametrize("how", ["unmounted", "moved-to-another-disk"])
def test_a_vanished_folder_keeps_its_tasks_although_the_api_holds_one(
    crontask: Callable[..., Crontask], tmp_path: Path, how: str
) -> None:
    app = crontask()
    (app.tasks / "tick.yaml").write_text(task("tick", append(str(tmp_path / "tick.txt"))))
    app.wait_log("task added")
    api_task = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "from-api"},
        "spec": {"schedule": "@daily", "command": {"args": ["true"]}},
    }
    httpx.post(f"{app.server}/api/v1/tasks", json=api_task).raise_for_status()
    wait_for("a first run", lambda: lines(tmp_path / "tick.txt"))
    if how == "unmounted":  # the mount point stays, empty
        for path in app.tasks.iterdir():
            path.unlink()
    else:  # a move across file systems: a copy, then the files and the folder deleted
        shutil.copytree(app.tasks, tmp_path / "moved-away")
        shutil.rmtree(app.tasks)
    app.wait_log("definition error")
    before = len(lines(tmp_path / "tick.txt"))
    wait_for("tick to keep running", lambda: len(lines(tmp_path / "tick.txt")) >= before + 2)
    assert "task removed" not in app.log()
    listed = httpx.get(f"{app.server}/api/v1/tasks").json()["items"]
    assert {t["key"] for t in listed} >= {"default/tick", "default/from-api"}


@pytest.mark.slow
def test_a_commit_without_task_files_keeps_the_git_tasks_although_a_folder_holds_one(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "remote")
    good = repo.commit({"tasks/tick.yaml": task("tick", append(str(tmp_path / "tick.txt")))}, "add")
    app = crontask("--git", repo.url, "--git-path", "tasks", "--git-interval", "0.5s")
    (app.tasks / "daily.yaml").write_text(task("daily", ["true"], schedule="@daily"))
    wait_for("a first run", lambda: lines(tmp_path / "tick.txt"))
    emptied = repo.commit({"tasks/tick.yaml": None, "tasks/README.md": "moved\n"}, "empty")
    # Refused whole (the revision with tasks stays in force, for a restart too).
    app.wait_log(f"revision {emptied[:12]} refused: --git-path 'tasks' holds no task file")
    before = len(lines(tmp_path / "tick.txt"))
    wait_for("tick to keep running", lambda: len(lines(tmp_path / "tick.txt")) >= before + 2)
    assert "task removed" not in app.log()
    sources = httpx.get(f"{app.server}/api/v1/sources").json()["items"]
    git = next(s for s in sources if s["kind"] == "git")
    assert (git["revision"], git["attemptedRevision"], git["errors"]) == (good, emptied, 0)
