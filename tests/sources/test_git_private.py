"""What the git source writes under the state directory (the bare repository, the checkouts of
each revision, which may hold secrets) is in folders only crontask's user may open."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sources.test_git import Clock, Remote, doc, isolate_git, source_for


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_the_git_folders_are_private(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.write("a.yaml", doc("a"))
    remote.commit()
    state = tmp_path / "state"
    source = source_for(remote, state, Clock())
    assert source.sync() is True
    base = source.base
    assert base.parent == state / "git"
    for folder in (state / "git", base, base / "worktrees"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
