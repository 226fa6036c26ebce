"""A ``--state-dir`` inside a folder ``crontask run`` reads as task files is refused at start:
the tasks the API stores there (``api-tasks/NS/NAME.yaml``), and the git checkout, were read
as task files of that folder too. A ``POST /api/v1/tasks`` was answered ``409 ... is defined
by file source tasks/state/api-tasks/x/api1.yaml; change it there`` (a file the user never
wrote) and the task was dropped. A hidden state dir (the default ``.crontask``) is not read, so
it may be anywhere; so may one a link leads to (a linked folder is not entered)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.state_place import read_as_tasks
from tests.helpers import NEVER_DUE, crontask_cli, wait_for


@pytest.mark.parametrize(
    ("paths", "state", "shown"),
    [
        (["tasks"], "tasks/state", "tasks"),
        (["tasks"], "tasks", "tasks"),
        (["."], "state", "."),
        (["other", "tasks/../tasks"], "tasks/deep/state", "tasks/../tasks"),
    ],
)
def test_a_state_dir_read_as_task_files_is_refused(
    tmp_path: Path, paths: list[str], state: str, shown: str
) -> None:
    for folder in ("tasks", "other"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "t.yaml").write_text(NEVER_DUE.replace("name: t", f"name: {folder}"))
    argv = ["run", *paths, "--state-dir", state, "--listen", "off"]
    done = crontask_cli(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("usage: crontask run ")
    said = done.stderr.splitlines()[-1]
    assert said == (
        f"crontask run: error: --state-dir {state} is inside {shown}, a folder crontask reads "
        "task files from: the tasks the API stores in it would be read as task files too; "
        "give a state dir outside it, or a hidden one (a name starting with '.', as the "
        "default .crontask)"
    )
    assert not (tmp_path / state).exists() or state == "tasks"  # refused before it is made


def test_a_hidden_state_dir_inside_is_used(tmp_path: Path) -> None:
    """Through a real start; the other places a state dir may be or not: the table below."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.yaml").write_text(NEVER_DUE)
    for state in ("tasks/.state",):
        log = tmp_path / f"log-{state.replace('/', '-')}"
        argv = ["run", "tasks", "--state-dir", state, "--listen", "off"]
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "reconciler", *argv], cwd=tmp_path, stdout=out, stderr=out
            )
        try:
            wait_for("the first pass", lambda: "msg=reconciled" in log.read_text() or None)  # noqa: B023
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()
        assert "api-tasks" not in log.read_text()
        assert (tmp_path / state / "runs.db").exists()


@pytest.mark.parametrize(
    ("paths", "state", "inside"),
    [
        (["tasks"], ".crontask", None),  # the default, beside
        (["."], ".crontask", None),  # the default, hidden
        (["tasks"], "tasks-state", None),  # beside, a name that starts as the folder's
        (["tasks/t.yaml"], "tasks/state", None),  # a file is read alone
        (["tasks"], "tasks/.h/state", None),  # below a hidden folder
        (["tasks"], "tasks/link/state", None),  # a linked folder is not entered
        ([".h"], ".h/state", ".h"),  # a hidden folder given is read
        (["tlink"], "tasks/state", "tlink"),  # the folder given through a link
        (["tasks"], "tlink/state", "tasks"),  # the state dir given through one
        (["tasks"], "tasks/inlink/state", "tasks"),  # a link to a folder the walk enters
        (["tasks/"], "./tasks/./sub/../state", "tasks/"),
        (["other", "tasks"], "tasks/sub/state", "tasks"),
    ],
)
def test_the_places_read_as_task_files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    paths: list[str],
    state: str,
    inside: str | None,
) -> None:
    (tmp_path / "tasks" / "sub").mkdir(parents=True)
    (tmp_path / "tasks" / "t.yaml").write_text(NEVER_DUE)
    (tmp_path / "elsewhere").mkdir()
    os.symlink("tasks", tmp_path / "tlink")
    os.symlink("../elsewhere", tmp_path / "tasks" / "link")
    os.symlink("sub", tmp_path / "tasks" / "inlink")
    monkeypatch.chdir(tmp_path)
    assert read_as_tasks(paths, Path(state)) == inside


def test_a_path_or_state_dir_through_a_link_that_cannot_be_read_is_no_crash(
    tmp_path: Path,
) -> None:
    """``/proc/1/cwd`` cannot be read (EACCES): Python 3.11's realpath raised it, a traceback
    at start. Such a path is its own error as ever (``test_path_arguments``); a state dir
    through it is refused where it is opened."""
    os.symlink("/proc/1/cwd", tmp_path / "locked")
    (tmp_path / "tasks").mkdir()
    argv = ["run", "tasks", "--state-dir", "locked/state", "--listen", "off"]
    done = crontask_cli(*argv, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (1, 2), done.stderr


def test_the_refusal_comes_before_the_models_are_imported(tmp_path: Path) -> None:
    """As every usage error of ``run`` (``test_run_refuses_before_imports``): the check is a
    few path comparisons, and importing the definitions' models for it took about a second."""
    (tmp_path / "tasks").mkdir()
    argv = ["-X", "importtime", "-m", "reconciler", "run", "tasks", "--state-dir", "tasks/s"]
    done = subprocess.run(
        [sys.executable, *argv, "--listen", "off"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    imported = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "reconciler.cli.state_place" in imported
    assert not {"pydantic", "reconciler.core.desired", "reconciler.sources.reading"} & imported
