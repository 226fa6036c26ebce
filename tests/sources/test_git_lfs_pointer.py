"""A task file committed to Git LFS is, in the commit, a pointer: crontask reads files as
committed, so the error says what the file is (an LFS pointer) and what to do, at its place,
and the tasks read before stay. Real git repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.messages import LFS_POINTER
from tests.helpers import crontask_cli
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, synced

POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 12345\n"
)


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def test_an_lfs_pointer_in_a_commit_is_named_and_the_tasks_before_stay(tmp_path: Path) -> None:
    remote, state = Remote(tmp_path), tmp_path / "state"
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=Clock())
    assert synced(source)

    remote.write("tasks/a.yaml", POINTER)  # moved to LFS by a .gitattributes rule
    sha = remote.commit()
    assert synced(source)
    assert [str(e) for e in source.errors()] == [
        f"tasks/a.yaml:1:1: {LFS_POINTER} (revision {sha[:12]})"
    ]
    assert schedules(source) == {"default/a": "1 * * * *"}


def test_validate_names_an_lfs_pointer_with_its_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "big.yaml").write_text("# moved to LFS\n---\n" + POINTER)
    done = crontask_cli("validate", str(folder))
    assert done.returncode == 1, done
    assert f"big.yaml:3:1: {LFS_POINTER}" in done.stdout + done.stderr
    # Any other string as a whole document keeps the general message.
    (folder / "big.yaml").write_text("version 2 of the tasks\n")
    done = crontask_cli("validate", str(folder))
    assert "a map of fields such as apiVersion" in done.stdout + done.stderr
