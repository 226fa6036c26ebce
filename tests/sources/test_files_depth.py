"""A folder nested deeper than ``MAX_FOLDER_DEPTH``: not walked, a definition error of that
folder, and every other file of the tree read as ever, on every refresh."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from reconciler.sources.gitrepo import remove_tree
from reconciler.sources.survey import survey
from reconciler.sources.walk import MAX_FOLDER_DEPTH, iter_yaml_files
from tests.hostile.corpus import nest
from tests.sources.test_files import doc, keys, write

TOO_DEEP = f"folder nested more than {MAX_FOLDER_DEPTH} levels deep (the limit): not read"


@pytest.fixture(autouse=True)
def removed_after(tmp_path: Path) -> Iterator[None]:
    """pytest removes old temporary folders with shutil.rmtree, which a deep tree breaks."""
    yield
    for entry in tmp_path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            remove_tree(entry)


def test_the_deepest_folder_read_is_at_the_bound(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    write(nest(root, MAX_FOLDER_DEPTH) / "last.yaml", doc("last"))
    too_deep: list[Path] = []
    assert list(iter_yaml_files(root, too_deep)) == [root.joinpath(*["d"] * 100, "last.yaml")]
    assert too_deep == []


def test_a_folder_past_the_bound_is_an_error_and_the_rest_is_read(tmp_path: Path) -> None:
    # 1 100 levels made os.walk recurse past Python's limit: every resync failed whole.
    root = tmp_path / "tasks"
    bottom = nest(root, 1100)
    write(bottom / "hidden-task.yaml", doc("deep"))
    write(root / "a.yaml", doc("a"))
    write(root / "d" / "b.yaml", doc("b"))
    write(root / "e" / "c.yaml", doc("c"))
    first_refused = root.joinpath(*["d"] * (MAX_FOLDER_DEPTH + 1))
    source = DirectorySource([root])

    assert source.refresh() == {"default/a", "default/b", "default/c"}
    assert keys(source) == {f"default/{k}": "* * * * *" for k in "abc"}
    assert [str(e) for e in source.errors()] == [f"{first_refused}: {TOO_DEEP}"]

    # A resync after it reads changes as ever, and reports the folder once.
    write(root / "a.yaml", doc("a", "5 * * * *"))
    assert source.refresh() == {"default/a"}
    assert keys(source)["default/a"] == "5 * * * *"
    assert [str(e) for e in source.errors()] == [f"{first_refused}: {TOO_DEEP}"]


def test_a_watch_event_from_too_deep_reports_the_folder_and_reads_nothing(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    write(root / "a.yaml", doc("a"))
    source = DirectorySource([root])
    source.refresh()
    deep = write(nest(root, MAX_FOLDER_DEPTH + 1) / "x.yaml", doc("deep"))
    assert source.refresh({str(deep.absolute())}) == set()
    assert set(keys(source)) == {"default/a"}
    assert [str(e) for e in source.errors()] == [f"{deep.parent}: {TOO_DEEP}"]
    # Gone again: the next look at the tree drops the error.
    os.rename(root / "d", tmp_path / "elsewhere")
    source.refresh()
    assert source.errors() == []


def test_validate_reports_the_folder_as_a_problem(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    deep = nest(root, MAX_FOLDER_DEPTH + 5)
    write(deep / "x.yaml", doc("deep"))
    write(root / "a.yaml", doc("a"))
    found = survey(DirectorySource([root]), workers=1)
    assert (found.files, found.tasks) == (1, 1)
    assert found.problems == [f"{root.joinpath(*['d'] * 101)}: {TOO_DEEP}"]
