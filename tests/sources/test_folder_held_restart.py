"""A folder of a watched path turned into a link that is not entered (to nothing, to a folder
elsewhere, to a file), or a path gone, keeps the tasks of the files once in it: across a
restart too (``keptfiles``). The new process listed no file there and dropped them, under an
error that said they were kept. Real files, a real state directory, and a restart as a new
source over it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from tests.sources.test_files import doc, keys, write
from tests.sources.test_kept_files import kept, source

BOTH = {"default/a": "1 * * * *", "default/b": "2 * * * *"}
TARGETS = {"nothing": "nowhere", "a folder elsewhere": "/etc", "a file": "b.yaml"}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


def _read(root: Path, state: Path) -> DirectorySource:
    found = source(root, state)
    found.refresh()
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_a_folder_turned_into_a_link_keeps_its_tasks_after_a_restart(
    tmp_path: Path, state: Path, target: str
) -> None:
    root = tmp_path / "tasks"
    write(root / "team" / "a.yaml", doc("a", "1 * * * *"))
    write(root / "b.yaml", doc("b", "2 * * * *"))
    first = _read(root, state)
    shutil.rmtree(root / "team")
    (root / "team").symlink_to(TARGETS[target])
    first.refresh()
    assert keys(first) == BOTH
    said = [str(e) for e in first.errors()]
    assert said
    assert all("the tasks of files once here are kept" in e for e in said)

    again = _read(root, state)  # a restart
    assert keys(again) == BOTH
    assert [str(e) for e in again.errors()] == said

    # The folder back, with the file changed: read again, and nothing kept any more.
    (root / "team").unlink()
    write(root / "team" / "a.yaml", doc("a", "3 * * * *"))
    again.refresh()
    assert keys(again) == {"default/a": "3 * * * *", "default/b": "2 * * * *"}
    assert (again.errors(), kept(state)) == ([], [])


def test_a_folder_back_without_its_file_lets_the_tasks_go_at_the_restart(
    tmp_path: Path, state: Path
) -> None:
    root = tmp_path / "tasks"
    write(root / "team" / "a.yaml", doc("a", "1 * * * *"))
    write(root / "b.yaml", doc("b", "2 * * * *"))
    first = _read(root, state)
    shutil.rmtree(root / "team")
    (root / "team").symlink_to("nowhere")
    first.refresh()
    assert kept(state)

    (root / "team").unlink()  # while crontask is not running: the folder back, empty
    (root / "team").mkdir()
    again = _read(root, state)
    assert keys(again) == {"default/b": "2 * * * *"}
    assert (again.errors(), kept(state)) == ([], [])


def test_a_path_gone_keeps_its_tasks_after_a_restart(tmp_path: Path, state: Path) -> None:
    root = tmp_path / "tasks"
    write(root / "a.yaml", doc("a", "1 * * * *"))
    first = _read(root, state)
    os.rename(root, tmp_path / "away")
    first.refresh()
    assert keys(first) == {"default/a": "1 * * * *"}

    again = _read(root, state)
    assert keys(again) == {"default/a": "1 * * * *"}
    assert [str(e) for e in again.errors()] == [str(e) for e in first.errors()]


def test_a_path_emptied_keeps_its_tasks_after_a_restart(tmp_path: Path, state: Path) -> None:
    # Without --allow-empty a path that yields no file any more keeps its tasks: a restart
    # read the empty path, and they were gone without a word.
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a", "1 * * * *"))
    record = state / "refused-files.json"
    first = DirectorySource([root], refused_record=record, guard_empty=True)
    first.refresh()
    a.unlink()
    first.refresh()
    assert keys(first) == {"default/a": "1 * * * *"}
    said = [str(e) for e in first.errors()]

    again = DirectorySource([root], refused_record=record, guard_empty=True)
    again.refresh()
    assert keys(again) == {"default/a": "1 * * * *"}
    assert [str(e) for e in again.errors()] == said

    write(root / "b.yaml", doc("b", "2 * * * *"))  # a file again: the path says what it holds
    again.refresh()
    assert keys(again) == {"default/b": "2 * * * *"}
    assert (again.errors(), kept(state)) == ([], [])
