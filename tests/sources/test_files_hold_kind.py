"""A root held (``guard_empty``: it yields no file now, its tasks are kept) is told by its
error's kind (``ErrorKind.HOLD``), not by its words: a refresh then reads the whole source again
for a file back under it (``DirectorySource._is_hold``). Another error of the root whose message
starts with the same words (any text may) is no hold, and a file changed under that root is
read alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.core.desired import DefinitionError, ErrorKind, Location
from reconciler.sources.files import DirectorySource
from reconciler.sources.rootstate import hold_message
from tests.controller.test_reconcile import doc
from tests.sources.test_files_empty_guard import events, keys


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "one.yaml").write_text(doc("one"))
    (b / "two.yaml").write_text(doc("two"))
    return a, b


def scans(source: DirectorySource, monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """Notes each whole read of the source's roots (``scan``): a rescan, not a file's read."""
    seen: list[None] = []
    scan = source.scan

    def noted() -> Any:
        seen.append(None)
        return scan()

    monkeypatch.setattr(source, "scan", noted)
    return seen


@pytest.mark.parametrize("how", ["emptied", "gone"])
def test_a_held_root_says_so_by_its_kind(roots: tuple[Path, Path], how: str) -> None:
    a, b = roots
    source = DirectorySource([a, b], guard_empty=True)
    source.refresh(None)
    (a / "one.yaml").unlink()
    if how == "gone":
        a.rmdir()
    source.refresh(None)
    (error,) = source.errors()
    assert (error.location.path, error.kind) == (str(a), ErrorKind.HOLD)
    assert keys(source) == {"one", "two"}


def test_a_file_back_under_a_held_root_reads_the_source_again(
    roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule the kind serves: a file back where tasks were held settles the root whole."""
    a, b = roots
    source = DirectorySource([a, b], guard_empty=True)
    source.refresh(None)
    (a / "one.yaml").unlink()
    source.refresh(events(a, "one.yaml"))
    seen = scans(source, monkeypatch)
    (a / "three.yaml").write_text(doc("three"))
    source.refresh(events(a, "three.yaml"))
    assert len(seen) == 1
    assert source.errors() == []
    assert keys(source) == {"three", "two"}


def test_an_error_worded_as_a_hold_is_not_taken_for_one(
    roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, a hold was told by its message's start: this one was taken for a hold, and a
    file changed under its root read the whole source again (and dropped the error)."""
    a, b = roots
    source = DirectorySource([a, b], guard_empty=True)
    source.refresh(None)
    worded = DefinitionError(Location(source.kind, str(a)), hold_message(1, None))
    assert worded.kind is ErrorKind.INVALID
    source._root_errors[a] = worded  # no way to make one by the disk: the words are a hold's
    seen = scans(source, monkeypatch)
    (a / "one.yaml").write_text(doc("uno"))
    source.refresh(events(a, "one.yaml"))
    assert seen == []  # the changed file was read alone
    assert keys(source) == {"uno", "two"}
    assert source.errors() == [worded]
