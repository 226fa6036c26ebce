"""A commit that turns a folder of ``--git-path`` into a submodule, or into a link to nothing:
the folder is not read, and the tasks of its files stay, across a restart of ``crontask run``
too (``keptfiles``). The new process read the same revision, found nothing there, and the
task was gone: after the submodule without a word, after the link under an error that still
said it was kept. Real ``crontask run`` processes, real git."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_git import Repo
from tests.e2e.test_git_empty_restart import git_status, task_keys
from tests.e2e.test_run import append, lines, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def _turned(repo: Repo, how: str) -> str:
    """Commit ``tasks/team`` replaced by a submodule or a link to nothing."""
    work = ["-C", str(repo.work)]
    head = repo.git(*work, "rev-parse", "HEAD")
    repo.git(*work, "rm", "-r", "-q", "tasks/team")
    if how == "submodule":
        repo.git(*work, "update-index", "--add", "--cacheinfo", f"160000,{head},tasks/team")
    else:
        (repo.work / "tasks/team").symlink_to("nowhere")
        repo.git(*work, "add", "-A")
    repo.git(*work, "commit", "-q", "-m", how)
    repo.git(*work, "push", "-q", "origin", "main")
    return repo.git(*work, "rev-parse", "HEAD")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["submodule", "link to nothing"])
def test_a_folder_not_read_keeps_its_task_running_across_a_restart(
    crontask: Callable[..., Crontask], tmp_path: Path, how: str
) -> None:
    repo = Repo(tmp_path / "remote")
    ticks = tmp_path / "tick.txt"
    files: dict[str, str | None] = {
        "tasks/team/tick.yaml": task("tick", append(str(ticks))),
        "tasks/other.yaml": task("other", ["true"], schedule="@daily"),
    }
    repo.commit(files, "add")
    app = crontask("--git", repo.url, "--git-path", "tasks", "--git-interval", "0.5s")
    wait_for("a first run", lambda: lines(ticks))
    turned = _turned(repo, how)
    wait_for("the revision applied", lambda: git_status(app)["revision"] == turned)
    assert task_keys(app) == {"default/tick", "default/other"}

    assert app.stop() == 0
    app.start()
    assert git_status(app)["revision"] == turned
    assert task_keys(app) == {"default/tick", "default/other"}
    before = len(lines(ticks))
    wait_for("tick to run on", lambda: len(lines(ticks)) > before)
    assert "task removed" not in app.log()
