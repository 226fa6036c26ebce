"""A commit whose ``--git-path`` is a link, or holds folders nested too deep: a link out of the
repository is an error of the path in that revision and nothing of the host is read or named
(the tasks of the revision before stay); a link to another folder of the repository is
followed; a folder too deep is an error of that folder. Real git, as in test_git."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitrepo import remove_tree
from reconciler.sources.walk import MAX_FOLDER_DEPTH
from tests.hostile.corpus import nest
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, synced

OUTSIDE = "a symbolic link on this path leads outside the repository: not read"


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """As in test_git; and deep trees are removed here: pytest's own clean-up recurses."""
    isolate_git(monkeypatch, tmp_path)
    yield
    for entry in tmp_path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            remove_tree(entry)


def everything_said(source: GitSource) -> str:
    errors = [str(e) for e in source.errors()]
    return "\n".join(errors + [repr(d) for d in source.definitions()])


@pytest.mark.parametrize("path", ["tasks", "tasks/inner"])
def test_a_git_path_linked_out_of_the_repository_is_refused_until_a_commit_fixes_it(
    path: str, tmp_path: Path
) -> None:
    remote, state = Remote(tmp_path), tmp_path / "state"
    host = tmp_path / "host"
    (host / "inner").mkdir(parents=True)
    for folder in (host, host / "inner"):
        (folder / "host-secret-name.yaml").write_text(doc("stolen"))
    remote.write(f"{path}/a.yaml", doc("a", "1 * * * *"))
    good = remote.commit()
    source = GitSource(GitOptions(remote.url, path=path), state, clock=Clock())
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *"}

    # `tasks` becomes a link to a folder of the host (for tasks/inner: a link on its way).
    shutil.rmtree(remote.work / "tasks")
    os.symlink(host, remote.work / "tasks")
    sha = remote.commit()
    assert not synced(source)  # refused whole (``gitempty``): the revision before stays
    status = source.status()
    assert status.last_error == (
        f"revision {sha[:12]} refused: --git-path '{path}': a symbolic link on this path leads "
        "outside the repository; the tasks of the revision in force stay (retrying in 60s)"
    )
    assert (status.revision, source.errors()) == (good, [])
    assert schedules(source) == {"default/a": "1 * * * *"}
    assert "host-secret-name" not in everything_said(source)
    assert "stolen" not in everything_said(source)

    # A real folder again: read as ever, and the error is gone.
    (remote.work / "tasks").unlink()
    remote.write(f"{path}/b.yaml", doc("b", "2 * * * *"))
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/b": "2 * * * *"}
    assert source.errors() == []


def test_a_git_path_linked_to_a_folder_of_the_repository_is_read(tmp_path: Path) -> None:
    remote, state = Remote(tmp_path), tmp_path / "state"
    remote.write("deploy/tasks/a.yaml", doc("a", "1 * * * *"))
    os.symlink("deploy/tasks", remote.work / "tasks")
    remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=Clock())
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *"}
    assert source.errors() == []
    (location,) = [d.location for d in source.definitions()]
    assert location.path == "tasks/a.yaml"  # as found, through the link


def test_a_folder_nested_too_deep_in_a_commit_is_an_error_of_that_folder(tmp_path: Path) -> None:
    remote, state = Remote(tmp_path), tmp_path / "state"
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    bottom = nest(remote.work / "tasks", 1100)
    (bottom / "deep.yaml").write_text(doc("deep"))
    sha = remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=Clock())
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *"}
    refused = "/".join(["tasks"] + ["d"] * (MAX_FOLDER_DEPTH + 1))
    message = f"folder nested more than {MAX_FOLDER_DEPTH} levels deep (the limit): not read"
    assert [str(e) for e in source.errors()] == [f"{refused}: {message} (revision {sha[:12]})"]

    # The next commit replaces that tree (deleted without recursion, too).
    remote.rm("tasks/d")
    remote.write("tasks/b.yaml", doc("b", "2 * * * *"))
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "2 * * * *"}
    assert source.errors() == []
    assert len(list((state / "git").glob("*/worktrees/*"))) == 1
