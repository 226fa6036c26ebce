"""A folder moved away keeps the tasks it defined, and its error says so (``no task file here
any more: keeping the N tasks it defined``), whether a rescan sees the path gone or the events
of its files see them go, with or without ``--allow-empty`` (a path not there is not an empty
one), in ``crontask run``'s log as in the source's errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from reconciler.sources.rootstate import hold_message
from tests.controller.test_reconcile import doc
from tests.helpers import wait_for

KEPT = "no task file here any more: keeping the 2 tasks it defined"
SAID = f"{KEPT}: path does not exist; they stay until it is back"


def folder(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "one.yaml").write_text(doc("one"))
    (tasks / "two.yaml").write_text(doc("two"))
    return tasks


def keys(source: DirectorySource) -> set[str]:
    return {d.key.partition("/")[2] for d in source.definitions()}


# With --allow-empty (no guard) a rescan holds the tasks of a path gone too; the events of its
# files alone do not (they are taken as the files deleted), which is not this test's subject.
@pytest.mark.parametrize(
    ("by", "guard_empty"), [("resync", True), ("resync", False), ("events", True)]
)
def test_a_folder_moved_away_says_it_keeps_its_tasks(
    tmp_path: Path, by: str, guard_empty: bool
) -> None:
    tasks = folder(tmp_path)
    source = DirectorySource([tasks], guard_empty=guard_empty)
    source.refresh(None)
    shutil.move(tasks, tmp_path / "tasks.gone")
    if by == "events":  # the files' events come first; the rescan's words must be the same
        source.refresh({str((tasks / n).absolute()) for n in ("one.yaml", "two.yaml")})
        assert [e.message for e in source.errors()] == [SAID]
    source.refresh(None)
    assert keys(source) == {"one", "two"}
    assert [(e.location.path, e.message) for e in source.errors()] == [(str(tasks), SAID)]
    shutil.move(tmp_path / "tasks.gone", tasks)  # back: the hold ends
    source.refresh(None)
    assert keys(source) == {"one", "two"}
    assert source.errors() == []


def test_a_path_that_defined_nothing_is_only_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    source = DirectorySource([empty], guard_empty=True)
    source.refresh(None)
    empty.rmdir()
    source.refresh(None)
    assert [e.message for e in source.errors()] == ["path does not exist"]


def test_crontask_run_logs_that_a_folder_moved_away_keeps_its_tasks(tmp_path: Path) -> None:
    folder(tmp_path)
    log = tmp_path / "run.log"
    argv = [sys.executable, "-m", "reconciler", "run", "tasks", "--listen", "off"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "CRONTASK_DB"},
        )

    def logged(text: str) -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"crontask run exited ({proc.returncode}):\n{log.read_text()}")
        return text in log.read_text()

    try:
        wait_for("crontask to start", lambda: logged("crontask started"))
        (tmp_path / "tasks").rename(tmp_path / "tasks.gone")
        wait_for("the folder's error", lambda: logged(KEPT))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    said = log.read_text()
    assert f'error="tasks: {SAID}"' in said
    assert "definition error resolved" not in said  # it is not back
    assert "task removed" not in said


def test_one_task_is_said_in_the_singular() -> None:
    assert hold_message(1, None, gone=True) == (
        "no task file here any more: keeping its task: path does not exist; "
        "it stays until it is back"
    )
