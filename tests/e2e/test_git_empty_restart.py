"""A git revision that yields no task (its ``--git-path`` deleted, or left without a task file)
while the revision in force has tasks is refused whole without ``--allow-empty``: ``current``
stays on the revision with tasks, so a restart still reads them. It was applied, its tasks held
in memory alone, and the next start read the empty revision in force: every task was gone.
Real ``crontask run`` processes, real git."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_git import Repo
from tests.e2e.test_run import append, lines, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def git_status(app: Crontask) -> dict[str, Any]:
    items = httpx.get(f"{app.server}/api/v1/sources").json()["items"]
    found: dict[str, Any] = next(s for s in items if s["kind"] == "git")
    return found


def task_keys(app: Crontask) -> set[str]:
    return {t["key"] for t in httpx.get(f"{app.server}/api/v1/tasks").json()["items"]}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["folder-deleted", "folder-emptied"])
def test_a_revision_without_tasks_leaves_them_in_force_across_a_restart(
    crontask: Callable[..., Crontask], tmp_path: Path, how: str
) -> None:
    repo = Repo(tmp_path / "remote")
    ticks = tmp_path / "tick.txt"
    good = repo.commit({"tasks/tick.yaml": task("tick", append(str(ticks)))}, "add")
    app = crontask("--git", repo.url, "--git-path", "tasks", "--git-interval", "0.5s")
    wait_for("a first run", lambda: lines(ticks))
    change: dict[str, str | None] = {"tasks/tick.yaml": None}
    if how == "folder-emptied":
        change["tasks/README.md"] = "moved\n"
    else:
        change["README.md"] = "no tasks here any more\n"
    empty = repo.commit(change, "no tasks")
    refused = f"revision {empty[:12]} refused: --git-path 'tasks' "
    wait_for("the empty revision refused", lambda: refused in (git_status(app)["lastError"] or ""))
    assert git_status(app)["revision"] == good
    assert "task removed" not in app.log()

    assert app.stop() == 0
    app.start()
    assert task_keys(app) == {"default/tick"}
    before = len(lines(ticks))
    wait_for("tick to run on", lambda: len(lines(ticks)) > before)
    wait_for("refused again", lambda: refused in (git_status(app)["lastError"] or ""))
    assert git_status(app)["revision"] == good
    assert "task removed" not in app.log()

    back = repo.commit({"tasks/tock.yaml": task("tock", ["true"], schedule="@daily")}, "back")
    wait_for("a revision with tasks applied", lambda: git_status(app)["revision"] == back)
    wait_for("tick removed, tock added", lambda: task_keys(app) == {"default/tock"})
    assert git_status(app)["lastError"] is None


@pytest.mark.slow
def test_with_allow_empty_a_revision_without_task_files_removes_them_as_before(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "remote")
    repo.commit({"tasks/tick.yaml": task("tick", ["true"], schedule="@daily")}, "add")
    app = crontask(
        "--git", repo.url, "--git-path", "tasks", "--git-interval", "0.5s", "--allow-empty"
    )
    wait_for("tick", lambda: task_keys(app) == {"default/tick"})
    empty = repo.commit({"tasks/tick.yaml": None, "tasks/README.md": "moved\n"}, "empty")
    wait_for("the empty revision applied", lambda: git_status(app)["revision"] == empty)
    wait_for("tick removed", lambda: task_keys(app) == set())
    assert git_status(app)["lastError"] is None
