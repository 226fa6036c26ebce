"""A folder emptied at once costs one look at the disk per refresh, not one per file gone:
whether a root is held (``guard_empty``) is decided once per root and refresh. Decided per
file, a folder of 6000 one-task files emptied took 40 s of walks and sums, while the other
sources' changes waited. Counted in listings of folders (``os.scandir``), not in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from tests.controller.test_reconcile import doc

FILES = 400


class Listings:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> Listings:
    counted = Listings()
    real = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        counted.count += 1
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return counted


@pytest.mark.parametrize("by", ["events", "resync"])
def test_an_emptied_folder_is_looked_at_once_per_refresh(
    tmp_path: Path, listings: Listings, by: str
) -> None:
    tasks, other = tmp_path / "tasks", tmp_path / "other"
    tasks.mkdir()
    other.mkdir()
    for i in range(FILES):
        (tasks / f"t{i}.yaml").write_text(doc(f"t{i}"))
    source = DirectorySource([tasks, other], guard_empty=True)
    source.refresh(None)
    gone = {str(path.absolute()) for path in tasks.iterdir()}
    for path in tasks.iterdir():
        path.unlink()
    (other / "new.yaml").write_text(doc("new"))
    listings.count = 0
    source.refresh(gone | {str((other / "new.yaml").absolute())} if by == "events" else None)
    # A resync lists both roots, then the emptied one once more to decide it is held.
    assert listings.count <= 3
    assert len(source.definitions()) == FILES + 1  # held, and the other root's change applied
    (error,) = source.errors()
    assert error.message.startswith(f"no task file here any more: keeping the {FILES} tasks")
    # While it stays held, every resync costs the same again.
    listings.count = 0
    source.refresh(None)
    assert listings.count <= 3
    assert len(source.definitions()) == FILES + 1
