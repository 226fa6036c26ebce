"""The directory source under a symlink swapped atomically (git-sync's ``--link``), and the
revision stamping the git source builds on. No git needed: git-sync is simulated."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from reconciler.core.desired import Location, SourceKind
from reconciler.sources.files import DirectorySource


def doc(name: str, schedule: str = "* * * * *") -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}}}\n"
        f'spec: {{schedule: "{schedule}", command: {{args: ["true"]}}}}\n'
    )


def tree(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def swap(link: Path, target: str) -> None:
    """What git-sync does: a new symlink renamed over the old one."""
    temporary = link.with_name(".tmp-link")
    os.symlink(target, temporary)
    os.replace(temporary, link)


def schedules(source: DirectorySource) -> dict[str, str]:
    return {d.key: d.task.spec.schedule for d in source.definitions()}


def test_a_git_sync_link_swap_is_picked_up_once(tmp_path: Path) -> None:
    worktrees = tmp_path / ".worktrees"
    tree(worktrees / "aaa", {"a.yaml": doc("a", "1 * * * *"), "sub/b.yaml": doc("b")})
    link = tmp_path / "link"
    os.symlink(".worktrees/aaa", link)
    source = DirectorySource([link])
    assert source.refresh() == {"default/a", "default/b"}

    # The next revision: a same-size edit, an unchanged file, a new file; the new tree is
    # complete before the swap, and the old one is deleted after it, as git-sync does.
    tree(
        worktrees / "bbb",
        {"a.yaml": doc("a", "2 * * * *"), "sub/b.yaml": doc("b"), "c.yaml": doc("c")},
    )
    swap(link, ".worktrees/bbb")
    shutil.rmtree(worktrees / "aaa")

    assert {"default/a", "default/c"} <= source.refresh()
    assert schedules(source) == {
        "default/a": "2 * * * *",
        "default/b": "* * * * *",
        "default/c": "* * * * *",
    }
    assert source.refresh() == set()
    # Paths are read through the link, never resolved: the same in every revision.
    locations = sorted(d.location.path for d in source.definitions())
    assert locations == [str(link / "a.yaml"), str(link / "c.yaml"), str(link / "sub/b.yaml")]


def test_a_revision_breaking_a_file_keeps_its_last_good_tasks_across_the_swap(
    tmp_path: Path,
) -> None:
    tree(tmp_path / "r1", {"a.yaml": doc("a", "1 * * * *")})
    tree(tmp_path / "r2", {"a.yaml": doc("a", "61 * * * *")})
    link = tmp_path / "link"
    os.symlink("r1", link)
    source = DirectorySource([link])
    source.refresh()
    swap(link, "r2")
    source.refresh()
    assert schedules(source) == {"default/a": "1 * * * *"}
    (error,) = source.errors()
    message = "spec.schedule: minute field: 61 is out of range 0-59"
    assert str(error) == f"{link / 'a.yaml'}:4:19: {message}"


def test_watch_hints_name_files_under_the_link(tmp_path: Path) -> None:
    # watchfiles reports events under the path it was given (the link), not the target.
    tree(tmp_path / "r1", {"a.yaml": doc("a", "1 * * * *")})
    tree(tmp_path / "r2", {"a.yaml": doc("a", "2 * * * *")})
    link = tmp_path / "link"
    os.symlink("r1", link)
    source = DirectorySource([link])
    source.refresh()
    swap(link, "r2")
    assert source.refresh({str(link / "a.yaml")}) == {"default/a"}
    assert schedules(source) == {"default/a": "2 * * * *"}


def test_a_new_revision_rereads_files_whose_stat_looks_unchanged(tmp_path: Path) -> None:
    file = tmp_path / "tasks" / "a.yaml"
    tree(tmp_path, {"tasks/a.yaml": doc("a", "1 * * * *")})
    before = file.stat()
    source = DirectorySource(
        [tmp_path / "tasks"], source=SourceKind.GIT, revision="r1", relative_to=tmp_path
    )
    source.refresh()
    (definition,) = source.definitions()
    assert definition.location == Location("git", "tasks/a.yaml", 1, 1)
    assert definition.location.revision == "r1"

    # Same inode, size and mtime: the ctime tells the rewrite apart.
    file.write_text(doc("a", "2 * * * *"))
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert source.refresh() == {"default/a"}
    # Nothing of its stat changed (a file of a new checkout that reuses the inode of a
    # deleted tree within one clock tick, which a test cannot forge): a new revision reads it.
    source.revision = "r2"
    assert source.refresh() == {"default/a"}
    (definition,) = source.definitions()
    assert definition.task.spec.schedule == "2 * * * *"
    assert definition.location.revision == "r2"


def test_relative_locations_for_errors_and_a_missing_root(tmp_path: Path) -> None:
    tree(tmp_path, {"tasks/a.yaml": "spec: ["})
    source = DirectorySource(
        [tmp_path / "tasks", tmp_path / "gone"],
        source=SourceKind.GIT,
        revision="r1",
        relative_to=tmp_path,
    )
    source.refresh()
    found = sorted(
        (e.location.path, e.location.revision, e.location.source) for e in source.errors()
    )
    assert found == [("gone", "r1", "git"), ("tasks/a.yaml", "r1", "git")]
