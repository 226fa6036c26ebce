"""A path holds at most ``walk.MAX_PATH_FILES`` task files, as a git checkout holds at most
``MAX_CHECKOUT_FILES``: each file found is kept, and 200 000 empty ones took ``crontask run``
from 120 to 308 MB. Past the bound the path is not read: an error of the path, whose files keep
their tasks, as under a folder that cannot be listed. A bound of 3 stands in for 100 000."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sources import walk
from reconciler.sources.files import DirectorySource
from tests.sources.test_files import doc, keys, write


@pytest.fixture(autouse=True)
def small_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk, "MAX_PATH_FILES", 3)


def errors(source: DirectorySource) -> list[str]:
    return sorted(str(e) for e in source.errors())


def test_a_path_past_the_bound_is_not_read_and_keeps_its_tasks(tmp_path: Path) -> None:
    tasks, other = tmp_path / "tasks", tmp_path / "other"
    for name in ("a", "b", "c"):
        write(tasks / f"{name}.yaml", doc(name))
    write(other / "o.yaml", doc("o"))
    source = DirectorySource([tasks, other])
    source.refresh()
    assert set(keys(source)) == {"default/a", "default/b", "default/c", "default/o"}
    assert errors(source) == []

    # A fourth file, and an edit: neither is read, and the three files keep their tasks.
    write(tasks / "d.yaml", doc("d"))
    write(tasks / "sub" / "e.yaml", "")
    write(tasks / "a.yaml", doc("a", "0 * * * *"))
    write(other / "o.yaml", doc("o", "0 * * * *"))  # the other path is read as ever
    source.refresh()
    assert keys(source) == {
        "default/a": "* * * * *",
        "default/b": "* * * * *",
        "default/c": "* * * * *",
        "default/o": "0 * * * *",
    }
    assert errors(source) == [
        f"{tasks}: holds more than 3 task files (the limit): not read; the tasks of its files "
        "are kept"
    ]
    assert source.unread == [tasks]
    # A watch event of a file there reads the path whole, not the file alone.
    source.refresh([str(write(tasks / "b.yaml", doc("b", "1 * * * *")).absolute())])
    assert keys(source)["default/b"] == "* * * * *"

    # Back within the bound (an event of the file removed): read again, and the error goes.
    (tasks / "d.yaml").unlink()
    (tasks / "sub" / "e.yaml").unlink()
    source.refresh([str((tasks / "d.yaml").absolute())])
    assert keys(source) == {
        "default/a": "0 * * * *",
        "default/b": "1 * * * *",
        "default/c": "* * * * *",
        "default/o": "0 * * * *",
    }
    assert errors(source) == []


def test_a_path_past_the_bound_at_start_reads_nothing_of_it(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        write(tmp_path / "sub" / f"{name}.yaml", doc(name))
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nowhere")  # said only if read
    source = DirectorySource([tmp_path])
    source.refresh()
    assert keys(source) == {}
    assert errors(source) == [
        f"{tmp_path}: holds more than 3 task files (the limit): not read; the tasks of its "
        "files are kept"
    ]
