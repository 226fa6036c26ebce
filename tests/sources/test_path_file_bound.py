"""A path holds at most ``walk.MAX_PATH_FILES`` task files, as a git checkout holds at most
``MAX_CHECKOUT_FILES``: each file found is kept, and 200 000 empty ones took ``crontask run``
from 120 to 308 MB. Past the bound the path is not read: an error of the path, whose files keep
their tasks, as under a folder that cannot be listed. A watch event there reads nothing, not
even the path whole (1.2 s an event at 100 001 files): the resync sees it back within the
bound. A bound of 3 stands in for 100 000."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources import walk
from reconciler.sources.files import DirectorySource
from tests.sources.test_files import doc, keys, write


@pytest.fixture(autouse=True)
def small_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk, "MAX_PATH_FILES", 3)


def errors(source: DirectorySource) -> list[str]:
    return sorted(str(e) for e in source.errors())


def counted(monkeypatch: pytest.MonkeyPatch, source: DirectorySource, name: str) -> list[object]:
    """The calls of the method ``name`` of ``source`` from now on (each its first argument)."""
    calls: list[object] = []
    method: Callable[..., Any] = getattr(source, name)

    def counting(*args: Any) -> Any:
        calls.append(args[0] if args else None)
        return method(*args)

    monkeypatch.setattr(source, name, counting)
    return calls


KEPT = "not read; the tasks of its files are kept"


def test_a_path_past_the_bound_is_not_read_and_keeps_its_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    assert errors(source) == [f"{tasks}: holds more than 3 task files (the limit): {KEPT}"]
    assert source.unread == [tasks]
    # A watch event of a file there reads nothing: neither the file alone nor the path whole.
    scans, loads = counted(monkeypatch, source, "scan"), counted(monkeypatch, source, "load")
    source.refresh([str(write(tasks / "b.yaml", doc("b", "1 * * * *")).absolute())])
    assert keys(source)["default/b"] == "* * * * *"
    assert (scans, loads) == ([], [])
    # One of the other path, in the same batch of events, is read alone as ever.
    o = write(other / "o.yaml", doc("o", "2 * * * *"))
    source.refresh([str((tasks / "a.yaml").absolute()), str(o.absolute())])
    assert keys(source)["default/o"] == "2 * * * *"
    assert (scans, loads) == ([], [o])

    # Back within the bound: the events of the files removed read nothing either...
    (tasks / "d.yaml").unlink()
    (tasks / "sub" / "e.yaml").unlink()
    source.refresh([str((tasks / "d.yaml").absolute()), str((tasks / "sub").absolute())])
    assert (scans, keys(source)["default/b"]) == ([], "* * * * *")
    assert errors(source) == [f"{tasks}: holds more than 3 task files (the limit): {KEPT}"]
    # ...the resync sees it: read again, and the error goes.
    source.refresh()
    assert len(scans) == 1
    assert keys(source) == {
        "default/a": "0 * * * *",
        "default/b": "1 * * * *",
        "default/c": "* * * * *",
        "default/o": "2 * * * *",
    }
    assert errors(source) == []


def test_a_path_past_the_bound_at_start_reads_nothing_of_it(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        write(tmp_path / "sub" / f"{name}.yaml", doc(name))
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nowhere")  # said only if read
    source = DirectorySource([tmp_path])
    source.refresh()
    assert keys(source) == {}
    # Nothing of it was read: none of its tasks is said to be kept.
    assert errors(source) == [
        f"{tmp_path}: holds more than 3 task files (the limit): not read; none of its tasks is "
        "in force until it is back within the bound"
    ]


def test_a_root_given_inside_a_path_past_the_bound_is_read_on_its_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c", "d"):
        write(tmp_path / f"{name}.yaml", doc(name))
    inner = write(tmp_path / "inner" / "i.yaml", doc("i"))
    source = DirectorySource([tmp_path, tmp_path / "inner"])
    source.refresh()
    assert keys(source) == {"default/i": "* * * * *"}
    # The inner root's file is its own (see rootpaths): an event of it is read, alone.
    scans = counted(monkeypatch, source, "scan")
    source.refresh([str(write(inner, doc("i", "0 * * * *")).absolute())])
    assert (scans, keys(source)) == ([], {"default/i": "0 * * * *"})


def test_a_root_swapped_back_within_the_bound_is_read_at_once(tmp_path: Path) -> None:
    """git-sync swaps its link to a commit that removed the extra files: the event names the
    root itself, and the path is read again then, not at the next resync."""
    first, second = tmp_path / "rev1", tmp_path / "rev2"
    for name in ("a", "b", "c", "d"):
        write(first / f"{name}.yaml", doc(name))
    for name in ("a", "b"):
        write(second / f"{name}.yaml", doc(name, "0 * * * *"))
    root = tmp_path / "current"
    root.symlink_to(first)
    source = DirectorySource([root])
    source.refresh()
    assert keys(source) == {}
    swapped = tmp_path / "current.new"
    swapped.symlink_to(second)
    os.replace(swapped, root)
    source.refresh([str(root.absolute())])
    assert keys(source) == {"default/a": "0 * * * *", "default/b": "0 * * * *"}
    assert errors(source) == []
