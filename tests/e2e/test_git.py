"""GitOps end to end: commits pushed to a bare repository while `crontask run --git` runs."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reconciler.host import usable_cores
from reconciler.sources.limits import PARALLEL_MIN_FILES
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import append, lines, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

SECRET = b"webhook-secret-for-tests"


class Repo:
    """A bare repository served over file://, and a working clone that pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "tasks.git"
        self.work = root / "work"
        self.env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
        self.git("init", "--bare", "-b", "main", str(self.bare))
        self.git("clone", str(self.bare), str(self.work))
        self.git("-C", str(self.work), "checkout", "-b", "main")

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], env=self.env, capture_output=True, text=True, check=True, timeout=30
        )
        return done.stdout.strip()

    def commit(self, files: dict[str, str | None], message: str, *, force: bool = False) -> str:
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        self.git("-C", str(self.work), "add", "-A")
        self.git("-C", str(self.work), "commit", "-q", "-m", message)
        self.git(
            "-C", str(self.work), "push", "-q", *(["--force"] if force else []), "origin", "main"
        )
        return self.git("-C", str(self.work), "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "remote")


def git_revision(app: Crontask) -> str | None:
    with httpx.Client(base_url=app.server) as client:
        items = client.get("/api/v1/sources").json()["items"]
    return next((s["revision"] for s in items if s["kind"] == "git"), None)


@pytest.mark.slow  # a series of commits, each waited for: 10 s
def test_commits_take_effect_and_failures_never_wipe(
    crontask: Callable[..., Crontask], repo: Repo, tmp_path: Path
) -> None:
    first = repo.commit({"tasks/tick.yaml": task("tick", append("tick.txt"))}, "add tick")
    app = crontask(
        "--git",
        repo.url,
        "--git-path",
        "tasks",
        "--git-interval",
        "0.5s",
        "--git-webhook-secret-file",
        str(_secret(tmp_path)),
    )
    wait_for("tick from git", lambda: lines(tmp_path / "tick.txt"))
    assert git_revision(app) == first
    with httpx.Client(base_url=app.server) as client:
        view = client.get("/api/v1/tasks/default/tick").json()
    assert view["source"] == {"kind": "git", "location": "tasks/tick.yaml:1:1", "revision": first}

    # Edit: the new definition runs.
    repo.commit({"tasks/tick.yaml": task("tick", append("edited.txt"))}, "edit")
    wait_for("the edited task", lambda: lines(tmp_path / "edited.txt"))

    # Break: the last good definition keeps running; the error names the file and line.
    broken = repo.commit(
        {"tasks/tick.yaml": task("tick", append("broken.txt"), schedule="* * 99 * * *")}, "break"
    )
    app.wait_log("tasks/tick.yaml:5:")
    wait_for("the broken revision attempted", lambda: git_revision(app) == broken)
    before = len(lines(tmp_path / "edited.txt"))
    wait_for("still running", lambda: len(lines(tmp_path / "edited.txt")) >= before + 2)
    assert not (tmp_path / "broken.txt").exists()

    # Force-push a fixed history: just a new revision.
    repo.git("-C", str(repo.work), "reset", "-q", "--hard", first)
    fixed = repo.commit({"tasks/tick.yaml": task("tick", append("fixed.txt"))}, "fix", force=True)
    wait_for("the fixed task", lambda: lines(tmp_path / "fixed.txt"))
    assert git_revision(app) == fixed

    # The branch disappears: tasks stay, the error is visible.
    repo.git("--git-dir", str(repo.bare), "update-ref", "-d", "refs/heads/main")
    app.wait_log("not found on remote")
    with httpx.Client(base_url=app.server) as client:
        git = next(s for s in client.get("/api/v1/sources").json()["items"] if s["kind"] == "git")
    assert "not found on remote" in (git["lastError"] or "")
    count = len(lines(tmp_path / "fixed.txt"))
    wait_for(
        "still running without its branch", lambda: len(lines(tmp_path / "fixed.txt")) >= count + 2
    )

    # Back, then deleted: the task is removed.
    repo.git("-C", str(repo.work), "push", "-q", "origin", "main")
    repo.commit(
        {"tasks/other.yaml": task("other", ["true"], schedule="@daily"), "tasks/tick.yaml": None},
        "delete",
    )
    app.wait_log("task removed")


def test_webhook_signature(crontask: Callable[..., Crontask], repo: Repo, tmp_path: Path) -> None:
    repo.commit({"tick.yaml": task("tick", ["true"], schedule="@daily")}, "add")
    app = crontask(
        "--git",
        repo.url,
        "--git-interval",
        "1h",
        "--git-webhook-secret-file",
        str(_secret(tmp_path)),
    )
    second = repo.commit({"tock.yaml": task("tock", ["true"], schedule="@daily")}, "add tock")
    body = b'{"ref": "refs/heads/main"}'
    good = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    with httpx.Client(base_url=app.server) as client:
        bad = client.post(
            "/api/v1/hooks/git", content=body, headers={"X-Hub-Signature-256": "sha256=00"}
        )
        assert bad.status_code == 401
        assert client.post("/api/v1/hooks/git", content=body).status_code == 401
        ok = client.post("/api/v1/hooks/git", content=body, headers={"X-Hub-Signature-256": good})
        assert ok.status_code == 202
    # With an hourly interval, only the webhook can have fetched the new commit this soon.
    wait_for("the pushed revision", lambda: git_revision(app) == second)
    app.wait_log("webhook signature rejected")


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-secret"
    path.write_bytes(SECRET + b"\n")
    return path


@pytest.mark.slow
def test_a_git_sync_link_swapped_atomically_is_picked_up_once(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    """git-sync compatibility: `crontask run LINK` where git-sync swaps LINK to each new
    revision's folder (a new symlink renamed over the old one)."""
    root = tmp_path / "git-sync"
    (root / "rev1").mkdir(parents=True)
    (root / "rev2").mkdir()
    (root / "rev1" / "job.yaml").write_text(task("job", append("rev1.txt")))
    (root / "rev2" / "job.yaml").write_text(task("job", append("rev2.txt")))
    link = root / "current"
    link.symlink_to("rev1")
    app = crontask(str(link))
    wait_for("revision 1 running", lambda: lines(tmp_path / "rev1.txt"))
    staging = root / ".current.tmp"
    staging.symlink_to("rev2")
    os.replace(staging, link)
    app.wait_log("task updated")
    wait_for("revision 2 running", lambda: lines(tmp_path / "rev2.txt"))
    # Once: one update for the swap, however many events the swap caused.
    assert app.log()[app.log_offset :].count("task updated") == 1
    settled = len(lines(tmp_path / "rev1.txt"))
    wait_for("more runs of revision 2", lambda: len(lines(tmp_path / "rev2.txt")) >= 3)
    assert len(lines(tmp_path / "rev1.txt")) <= settled + 1


@pytest.mark.slow
@pytest.mark.skipif(usable_cores() < 2, reason="reading ahead takes a second core")
def test_a_restart_reads_the_revision_in_force_on_every_core(
    crontask: Callable[..., Crontask], repo: Repo
) -> None:
    count = PARALLEL_MIN_FILES
    first = repo.commit(
        {f"tasks/{i:04d}.yaml": task(f"t{i}", ["true"], "0 0 1 1 *") for i in range(count)},
        "many tasks",
    )
    app = crontask("--git", repo.url, "--git-path", "tasks")
    wait_for("every task from git", lambda: app.log().count('msg="task added"') == count)
    assert app.stop() == 0
    app.start()  # the checkout of the first run is in force before the first fetch
    log = app.log()[app.log_offset :]
    read = next(line for line in log.splitlines() if 'msg="files read ahead"' in line)
    assert f"files={count} of={count} workers={usable_cores()} " in read
    assert read.endswith(" source=git")
    started = next(line for line in log.splitlines() if "crontask started" in line)
    assert f"tasks={count}" in started
    with httpx.Client(base_url=app.server) as client:
        view = client.get("/api/v1/tasks/default/t7").json()
    assert view["source"] == {"kind": "git", "location": "tasks/0007.yaml:1:1", "revision": first}
