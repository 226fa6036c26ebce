"""A task folder, a task file or ``--git-path`` itself replaced by a submodule (a gitlink, mode
160000) in a commit. Submodules are not fetched: git checks one out as an empty folder, which
read as a folder emptied removed the tasks of its files ("task removed ... no longer
declared"). It is an error of that folder, and the tasks of the files once there are kept, as
for a link to a folder not entered. Real git, as in test_git."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced

SUBMODULE = "a submodule (an empty folder): not read; the tasks of files once here are kept"


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def to_submodule(remote: Remote, path: str) -> str:
    """Commit ``path`` (a file or a folder) replaced by a gitlink to the last commit."""
    head = remote.git("rev-parse", "HEAD")
    remote.git("rm", "-r", "--quiet", "--cached", path)
    target = remote.work / path
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    remote.git("update-index", "--add", "--cacheinfo", f"160000,{head},{path}")
    return remote.commit(stage=False)


@pytest.mark.parametrize("replaced", ["team", "team/sub.yaml"])
def test_a_task_folder_or_file_turned_into_a_submodule_keeps_its_tasks(
    replaced: str, tmp_path: Path
) -> None:
    remote = Remote(tmp_path)
    remote.write("keep.yaml", doc("keep", "1 * * * *"))
    remote.write("team/sub.yaml", doc("sub", "2 * * * *"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", Clock())
    assert synced(source)
    assert schedules(source) == {"default/keep": "1 * * * *", "default/sub": "2 * * * *"}

    sha = to_submodule(remote, replaced)
    assert synced(source)
    assert [str(e) for e in source.errors()] == [f"{replaced}: {SUBMODULE} (revision {sha[:12]})"]
    assert schedules(source) == {"default/keep": "1 * * * *", "default/sub": "2 * * * *"}

    # The folder back as files: read again, and the error is gone.
    remote.git("rm", "--quiet", "--cached", replaced)
    remote.write("team/sub.yaml", doc("sub", "3 * * * *"))
    remote.commit()
    assert synced(source)
    assert source.errors() == []
    assert schedules(source) == {"default/keep": "1 * * * *", "default/sub": "3 * * * *"}


def test_a_git_path_turned_into_a_submodule_keeps_its_tasks(tmp_path: Path) -> None:
    # The revision is refused whole (``gitempty``), whatever --allow-empty says: the revision
    # before stays in force, across a restart too.
    remote = Remote(tmp_path)
    remote.write("team/sub.yaml", doc("sub", "2 * * * *"))
    good = remote.commit()
    source = source_for(remote, tmp_path / "state", Clock(), path="team")
    assert synced(source)
    assert schedules(source) == {"default/sub": "2 * * * *"}

    sha = to_submodule(remote, "team")
    assert not synced(source)
    assert source.status().last_error == (
        f"revision {sha[:12]} refused: --git-path 'team' is a submodule (an empty folder) in "
        "it; the tasks of the revision in force stay (retrying in 60s)"
    )
    assert (source.status().revision, source.errors()) == (good, [])
    assert schedules(source) == {"default/sub": "2 * * * *"}


def test_a_submodule_where_no_task_was_says_nothing(tmp_path: Path) -> None:
    # An empty folder where no file was read removes nothing: there is nothing to keep.
    remote = Remote(tmp_path)
    remote.write("keep.yaml", doc("keep", "1 * * * *"))
    remote.write("other/readme.txt", "not a task\n")
    remote.commit()
    source = source_for(remote, tmp_path / "state", Clock())
    assert synced(source)

    to_submodule(remote, "other")
    assert synced(source)
    assert source.errors() == []
    assert schedules(source) == {"default/keep": "1 * * * *"}
