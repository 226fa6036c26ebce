"""``POST /api/v1/plan`` bounds each source as a pass does: the folder and git each at
``--max-tasks`` on their own, a key in force counted in its own source and a new key in the
folder's (the server reads a folder). Past a source's bound none of its changes is planned
(the pass refuses each file that grows it past the bound, its updates and removals too), with
the pass's words, and its tasks in force the text changes are kept. Before, the text was
counted whole, files and git together, and refused whole: the plan refused what ``run``
applied, and planned adds ``run`` refused.

And an error that names no task beside one that names its task keeps every task the text does
not yield; before, the named task was kept and, with ``allowEmpty`` false, the others were
planned as removed. Against a real ``crontask run`` over a folder and a git repository."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.plan_server import PlanServer
from tests.helpers import task_doc, wait_for
from tests.sources.test_git import Remote

BOUND = 3
FILES = ["default/f1", "default/f2"]  # in the folder
GIT = ["default/g1", "default/g2", "default/g3"]  # in the repository: at the bound
PAST = "which would take this source to 4 tasks, past its bound of 3 (--max-tasks): not applied"


def _text(*names: str, changed: str = "") -> str:
    docs = [task_doc(n, schedule="0 3 * * *" if n == changed else "* * * * *") for n in names]
    return "---\n".join(yaml.safe_dump(doc) for doc in docs)


def _git_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    env["HOME"] = str(home)
    return env


class _Server(PlanServer):
    """A real ``crontask run --max-tasks 3`` over ``folder`` and a git repository."""

    def __init__(self, workdir: Path, folder: Path, url: str) -> None:
        git = ("--git", url, "--git-ref", "main", "--git-interval", "1s")
        options = ("--max-tasks", str(BOUND), *git)
        super().__init__(workdir, folder, options, env=_git_env(workdir / "home"))

    def keyed(self) -> dict[str, Any]:
        return {t["key"]: t for t in self.tasks()}


def _start(workdir: Path) -> _Server:
    home = workdir / "home"
    home.mkdir()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_git_env(home))  # the test's own git commands, isolated as the server's
    try:
        remote = Remote(workdir / "git")
        for name in ("g1", "g2", "g3"):
            remote.write(f"{name}.yaml", yaml.safe_dump(task_doc(name)))
        remote.commit()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    folder = workdir / "tasks"
    folder.mkdir()
    for name in ("f1", "f2"):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(task_doc(name)))
    return _Server(workdir, folder, remote.url)


def _ready(server: _Server) -> _Server:
    wait_for("the server's tasks", lambda: sorted(server.keyed()) == FILES + GIT, timeout=60)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    running = _start(tmp_path_factory.mktemp("plan-bounds"))
    try:
        yield _ready(running)
    finally:
        running.stop()


def _steps(found: Any) -> list[tuple[str, str]]:
    return [(step["operation"], step["key"]) for step in found["steps"]]


def test_a_source_with_room_is_planned_whatever_the_others_hold(server: _Server) -> None:
    """The folder holds 2 of its 3: adding one is planned, though the text holds 6 tasks."""
    found = server.plan(_text("f1", "f2", "f3", "g1", "g2", "g3"))
    assert (_steps(found), found["problems"], found["kept"]) == ([("add", "default/f3")], [], [])


def test_a_source_past_its_bound_is_kept_and_the_rest_planned(server: _Server) -> None:
    """The folder at 4 of 3: none of its changes is planned, as the pass refuses the file
    that adds f3 or f4, whatever else it changes (f1 is kept); git's removals are planned."""
    found = server.plan(_text("f1", "f2", "f3", "f4", "g1", changed="f1"))
    assert _steps(found) == [("remove", "default/g2"), ("remove", "default/g3")]
    assert len(found["problems"]) == 1
    assert PAST in found["problems"][0]
    assert "default/f3, default/f4" in found["problems"][0]
    assert found["kept"] == ["default/f1"]


def test_an_update_is_kept_when_a_text_past_the_bound_adds(server: _Server) -> None:
    """f1's change may be in the file that adds past the bound: kept, not planned."""
    found = server.plan(_text("f1", "f2", "f3", "f4", "g1", "g2", "g3", changed="f1"))
    assert (_steps(found), found["kept"]) == ([], ["default/f1"])
    assert len(found["problems"]) == 1
    assert PAST in found["problems"][0]


def test_a_named_error_beside_a_hidden_one_keeps_every_task(server: _Server) -> None:
    """``allowEmpty`` false: the named task re-added must not make the others removals."""
    text = yaml.safe_dump(task_doc("f1", schedule="0 25 * * *")) + "---\nkind: [\n"
    found = server.plan(text, "?allowEmpty=false")
    assert (_steps(found), found["heldRemovals"]) == ([], [])
    assert found["kept"] == sorted(FILES + GIT)


def test_run_applies_what_the_plan_plans(tmp_path: Path) -> None:
    """The same change made to the folder: the file that adds past the bound is refused,
    with the words the plan said; f1's change, in a file that adds nothing, is applied,
    which the plan kept, as a text cannot tell that file apart, and said it may be."""
    server = _ready(_start(tmp_path))
    try:
        planned = server.plan(_text("f1", "f2", "f3", "f4", "g1", "g2", "g3", changed="f1"))
        (server.folder / "f1.yaml").write_text(_text("f1", changed="f1"))
        (server.folder / "f3.yaml").write_text(_text("f3", "f4"))

        def refused() -> list[str] | None:
            task = server.keyed().get("default/f1", {})
            if task.get("resource", {}).get("spec", {}).get("schedule") != "0 3 * * *":
                return None
            status, answer = server.ask("GET", "/api/v1/sources")
            assert status == 200, answer
            said = [p for s in answer["items"] if s["kind"] == "file" for p in s["problems"]]
            return said or None

        said = wait_for("the pass that reads both files", refused, timeout=30)
        assert sorted(server.keyed()) == FILES + GIT  # f3 and f4 not added
        assert (_steps(planned), planned["kept"]) == ([], ["default/f1"])
        assert "in a file that adds no task do apply" in planned["problems"][0]
        assert PAST in said[0]
        assert PAST in planned["problems"][0]
    finally:
        server.stop()
