"""The state directory of the last release, read by this crontask (the upgrade), and this
crontask's read by that release again (a rollback): each one's real ``crontask run`` in turn
on one ``--state-dir``, its code taken from this repository's history. The tasks of a folder
and of a git repository, the kept definitions of a file broken in each, the API's tasks and
the run history are in force both ways. Without the history (a source archive, a shallow
clone) the test skips."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import wait_for
from tests.sources.test_git import Remote, isolate_git
from tests.store.test_previous_releases import RELEASES

ROOT = Path(__file__).resolve().parents[2]
# The release before this tree's version: the last that ``test_previous_releases`` runs on the
# run store.
LAST_RELEASE = list(RELEASES.items())[-1]
NEVER_DUE = '"0 0 1 1 *"'
API_TASK = {
    "apiVersion": "crontask.dev/v1alpha1",
    "kind": "CronTask",
    "metadata": {"name": "made", "namespace": "api"},
    "spec": {"schedule": "0 0 1 1 *", "command": {"args": ["true"]}},
}
TASKS = {"api/made", "default/a", "default/b", "default/c", "default/g", "default/h"}
KEPT = "a broken file keeps the tasks it defined before the restart"


def _doc(name: str) -> str:
    return (
        f"apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {{name: {name}}}\n"
        f'spec:\n  schedule: {NEVER_DUE}\n  command: {{args: ["true"]}}\n'
    )


def _release_tree(tmp_path: Path) -> Path:
    version, commit = LAST_RELEASE
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.skip(f"release {version} ({commit}) is not in this checkout's history")
    tree = tmp_path / f"release-{version}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "reconciler"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


class _Run:
    """One ``crontask run tasks --state-dir state`` in ``folder``, of the code at ``code``."""

    def __init__(self, folder: Path, code: Path, name: str, git: str) -> None:
        self.log = folder / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": str(code)}
        argv = [sys.executable, "-m", "reconciler", "run", "tasks", "--state-dir", "state"]
        argv += ["--listen", "127.0.0.1:0", "--shutdown-grace", "1s", "--git", git]
        argv += ["--git-path", "tasks", "--git-interval", "1s"]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=out, stderr=out)
        self.url = "http://" + wait_for(f"{name}'s API", self._address, timeout=60)
        wait_for(f"{name} started", lambda: "crontask started" in self.text(), timeout=60)

    def text(self) -> str:
        return self.log.read_text()

    def _address(self) -> str | None:
        assert self.proc.poll() is None, self.text()
        found = re.search(r'msg="api listening" address=(\S+)', self.text())
        return found[1] if found else None

    def call(self, method: str, path: str, body: object = None) -> object:
        answer = httpx.request(method, f"{self.url}/api/v1{path}", json=body, timeout=30)
        assert answer.is_success, answer.text
        said: object = answer.json()
        return said

    def tasks(self) -> set[str]:
        page = self.call("GET", "/tasks")
        assert isinstance(page, dict)
        return {item["key"] for item in page["items"]}

    def runs(self) -> dict[str, str]:
        page = self.call("GET", "/runs?limit=100")
        assert isinstance(page, dict)
        return {item["id"]: item["status"] for item in page["items"]}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.text()


@pytest.mark.slow
def test_the_last_releases_state_dir_is_read_after_the_upgrade_and_after_a_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = _release_tree(tmp_path)
    isolate_git(monkeypatch, tmp_path)
    remote = Remote(tmp_path)
    remote.write("tasks/gh.yaml", _doc("g") + "---\n" + _doc("h"))
    remote.commit()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "ab.yaml").write_text(_doc("a") + "---\n" + _doc("b"))
    (tmp_path / "tasks" / "c.yaml").write_text(_doc("c"))

    old = _Run(tmp_path, release, "release", remote.url)
    assert old.call("POST", "/tasks", API_TASK)
    ran = old.call("POST", "/tasks/default/c/runs")
    assert isinstance(ran, dict)
    wait_for("the manual run", lambda: old.runs().get(ran["id"]) == "succeeded")
    (tmp_path / "tasks" / "ab.yaml").write_text("metadata: {name: a\n")  # broken after a read
    wait_for("the definition error", lambda: 'error="tasks/ab.yaml' in old.text())
    wait_for("its kept copy", lambda: list((tmp_path / "state" / "kept-files").glob("*.json")))
    remote.write("tasks/gh.yaml", "metadata: {name: g\n")
    broken = remote.commit()
    wait_for("the revision applied", lambda: f"revision={broken}" in old.text())
    wait_for("its definition error", lambda: 'error="tasks/gh.yaml' in old.text())
    wait_for("its kept copy", lambda: list((tmp_path / "state").glob("git/*/kept-files/*.json")))
    assert old.tasks() == TASKS
    old.stop()

    new = _Run(tmp_path, ROOT, "upgraded", remote.url)
    assert new.text().count(KEPT) == 2
    assert new.tasks() == TASKS
    assert new.runs()[ran["id"]] == "succeeded"
    new.stop()

    back = _Run(tmp_path, release, "rolled-back", remote.url)
    assert back.text().count(KEPT) == 2
    assert back.tasks() == TASKS
    assert back.runs()[ran["id"]] == "succeeded"
    back.stop()
