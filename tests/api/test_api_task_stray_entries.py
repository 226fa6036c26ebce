"""Entries of ``<state dir>/api-tasks`` that crontask did not write, against the real service
over real files: one is the error of its key only (a restart still puts every other task in
force, the folder's too), a FIFO blocks nothing, and a PUT or a DELETE of its key either
replaces it or answers a 409 that says what to remove, as the key's error says: never a 500."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.sources.api import ApiTaskFiles
from reconciler.sources.files import DirectorySource
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "f.yaml").write_text(yaml.safe_dump(task_doc("f", "files")))
    return tasks


@pytest.fixture
def root(tmp_path: Path) -> Path:
    files = ApiTaskFiles(files_root(tmp_path))  # what a crontask run before left behind
    files.write("a/one", yaml.safe_dump(task_doc("one", "a"), sort_keys=False))
    return files_root(tmp_path)


Restart = Callable[[], LiveApi]


@pytest.fixture
def restart(root: Path, folder: Path) -> Iterator[Restart]:
    """Starts the service over the files as they are, as ``crontask run`` would."""
    started: list[LiveApi] = []

    def start() -> LiveApi:
        started.append(LiveApi(ApiTaskFiles(root), others=[DirectorySource([folder])]))
        return started[-1]

    yield start
    for instance in started:
        instance.stop()


def api_problems(live: LiveApi) -> list[str]:
    with live.client() as client:
        items = client.get("/api/v1/sources").json()["items"]
    (api,) = [item for item in items if item["kind"] == "api"]
    problems = api["problems"]
    assert isinstance(problems, list)
    return [str(p) for p in problems]


def test_after_a_restart_a_folder_named_as_a_task_keeps_no_other_task_out(
    restart: Restart, root: Path
) -> None:
    (root / "a" / "odd.yaml").mkdir()  # a careless mkdir, a restore
    live = restart()
    assert live.resync().ok
    assert live.scheduled() == {"a/one": "api", "files/f": "file"}
    (problem,) = api_problems(live)
    assert problem.endswith(
        "odd.yaml: not a regular file (a folder): not read (remove the "
        "folder: crontask removes none)"
    )
    with live.client() as client:
        for answer in (
            client.put("/api/v1/tasks/a/odd", json=task_doc("odd", "a")),
            client.delete("/api/v1/tasks/a/odd"),
        ):
            assert answer.status_code == 409, answer.text
            assert answer.json()["type"] == "https://crontask.dev/problems/in-the-way"
            assert "remove the folder" in answer.json()["detail"]
        assert client.put("/api/v1/tasks/a/two", json=task_doc("two", "a")).status_code == 201
    assert live.scheduled() == {"a/one": "api", "a/two": "api", "files/f": "file"}


def test_a_fifo_named_as_a_task_blocks_nothing_and_a_put_replaces_it(
    restart: Restart, root: Path
) -> None:
    fifo = root / "a" / "pipe.yaml"
    os.mkfifo(fifo)
    try:
        live = restart()  # the first pass reads it: it would block here for ever
    finally:
        # If a reader is blocked on it after all, a writer's open releases it (else ENXIO).
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert live.scheduled() == {"a/one": "api", "files/f": "file"}
    (problem,) = api_problems(live)
    assert "pipe.yaml: not a regular file (a FIFO): not read (PUT or DELETE the task" in problem
    with live.client() as client:
        answer = client.put("/api/v1/tasks/a/pipe", json=task_doc("pipe", "a"))
        assert answer.status_code == 200, answer.text  # in place of what was not read
    assert fifo.is_file()
    assert api_problems(live) == []


def test_a_namespace_folder_that_links_out_answers_what_its_error_says(
    restart: Restart, root: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    job = yaml.safe_dump(task_doc("job", "lnk"))
    (elsewhere / "job.yaml").write_text(job)
    (root / "lnk").symlink_to(elsewhere)
    live = restart()
    (problem,) = api_problems(live)
    assert problem.endswith(": not read (remove the link, which holds every task of namespace lnk)")
    with live.client() as client:
        for answer in (
            client.delete("/api/v1/tasks/lnk/job"),
            client.put("/api/v1/tasks/lnk/job", json=task_doc("job", "lnk")),
            client.post("/api/v1/tasks", json=task_doc("new", "lnk")),
        ):
            assert answer.status_code == 409, answer.text
            detail = answer.json()["detail"]
            assert f"its namespace folder {root}/lnk is a symbolic link" in detail
            assert detail.endswith("remove the link, which holds every task of namespace lnk")
    assert (elsewhere / "job.yaml").read_text() == job  # nothing through the link
    assert sorted(os.listdir(elsewhere)) == ["job.yaml"]
    (root / "lnk").unlink()  # what the answer says to do
    assert live.resync().ok
    assert api_problems(live) == []


def test_a_task_file_that_links_out_is_deleted_as_a_link(
    restart: Restart, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(yaml.safe_dump(task_doc("linked", "a")))
    (root / "a" / "linked.yaml").symlink_to(outside)
    live = restart()
    (problem,) = api_problems(live)
    assert "(a symbolic link): not read (PUT or DELETE the task to replace it)" in problem
    with live.client() as client:
        assert client.delete("/api/v1/tasks/a/linked").status_code == 204
    assert not os.path.lexists(root / "a" / "linked.yaml")
    assert outside.exists()
    assert api_problems(live) == []
