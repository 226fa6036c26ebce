"""A CronTask run together with an object that has no ``apiVersion`` (``cat task.yaml
notes.yaml``, notes.yaml ``kind: Note`` and a ``metadata``): its errors are named after the
CronTask, not after the other object's ``metadata.name``, so the task kept is the CronTask (a
running task moved into such a file stays running). A ``metadata`` alone after the task is a
stray object's too: the task is named by its own (``documentkeys``)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.documents import parse_text
from reconciler.sources.files import DirectorySource
from tests.e2e.conftest import START_WAIT
from tests.helpers import free_port, wait_for
from tests.sources.test_documents_run_together import TASK
from tests.sources.test_files import doc, write

NOTE = "kind: Note\nmetadata: {name: x}\n"
METADATA = "metadata:\n  name: other\n"
OURS = "default/keep-me"


def _keys(text: str) -> list[tuple[str, str | None]]:
    parsed = parse_text(text, "t.yaml")
    assert parsed.definitions == []
    return [(str(e), e.key) for e in parsed.errors]


def test_a_task_followed_by_an_unversioned_kind_names_the_task() -> None:
    assert _keys(TASK + NOTE) == [
        ("t.yaml:9:1: kind: duplicate key", OURS),
        ("t.yaml:10:1: metadata: duplicate key", OURS),
    ]


def test_a_task_followed_by_a_metadata_alone_is_named_by_its_own() -> None:
    """No ``apiVersion`` or ``kind`` repeats, so the message says where the objects start."""
    note = "objects at lines 1 and 9 run together, no '---' between them: the CronTask is the one at line 1"  # noqa: E501
    assert _keys(TASK + METADATA) == [(f"t.yaml:9:1: metadata: duplicate key ({note})", OURS)]


@pytest.mark.parametrize("other", [NOTE, METADATA])
def test_an_unversioned_object_followed_by_a_task_names_the_task(other: str) -> None:
    assert {key for _, key in _keys(other + TASK)} == {OURS}


def test_a_bound_broken_in_such_a_document_names_the_task() -> None:
    """The other errors of such a document (here a node over the nesting bound) too."""
    deep = "spec:\n  x: " + "[" * 200 + "]" * 200 + "\n"
    assert {key for _, key in _keys(TASK + "kind: Note\nmetadata: {name: x}\n" + deep)} == {OURS}


def test_validate_fails_at_the_repeated_key(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", TASK + NOTE)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"{tmp_path / 'a.yaml'}:9:1: kind: duplicate key" in done.stdout + done.stderr


def test_a_task_moved_into_such_a_file_is_kept(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", TASK)
    write(tmp_path / "b.yaml", doc("other"))
    source = DirectorySource([tmp_path])
    source.refresh()
    a.unlink()
    write(tmp_path / "c.yaml", TASK + NOTE)
    source.refresh()
    assert {d.key for d in source.definitions()} == {OURS, "default/other"}


class _Run:
    """A real ``crontask run`` over ``folder``, read through its API."""

    def __init__(self, workdir: Path, folder: Path) -> None:
        self.port = free_port()
        self.log = workdir / "crontask.log"
        root = str(Path(__file__).resolve().parents[2])
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "reconciler", "run", str(folder)),
                    *("--state-dir", str(workdir / "state"), "--shutdown-grace", "1s"),
                    *("--listen", f"127.0.0.1:{self.port}"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": root},
            )

    def tasks(self) -> dict[str, Any] | None:
        assert self.proc.poll() is None, self.log.read_text()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/api/v1/tasks")
            items = json.loads(conn.getresponse().read())["items"]
        except OSError:
            return None  # not listening yet
        finally:
            conn.close()
        return {item["key"]: item for item in items}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[_Run, Path]]:
    folder = tmp_path / "tasks"
    write(folder / "a.yaml", TASK)
    write(folder / "b.yaml", doc("other"))
    run = _Run(tmp_path, folder)
    yield run, folder
    run.stop()


def test_a_running_task_moved_into_such_a_file_keeps_running(
    running: tuple[_Run, Path],
) -> None:
    run, folder = running
    # The start's bound: the API first answers once crontask has started.
    wait_for(
        "both tasks",
        lambda: (t := run.tasks()) is not None and OURS in t and len(t) == 2,
        START_WAIT,
    )
    write(folder / "c.yaml", TASK + NOTE)  # written first: then a.yaml goes, as in a move
    error = f"{folder / 'c.yaml'}:9:1: kind: duplicate key"
    wait_for("the pass that reads c.yaml", lambda: error in run.log.read_text() or None)
    (folder / "a.yaml").unlink()

    def settled() -> dict[str, Any] | None:  # the task gone, or kept with its error
        tasks = run.tasks()
        if tasks is None or (OURS in tasks and not tasks[OURS]["error"]):
            return None
        return tasks

    tasks = wait_for("the pass that sees a.yaml go", settled)
    assert sorted(tasks) == [OURS, "default/other"]
    assert tasks[OURS]["error"] == error
