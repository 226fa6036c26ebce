"""A commit's folders may nest within PATH_MAX below its worktree but past it below the state
directory: git checks such a commit out (it works relative to the worktree), and deleting the
worktree must work too, relative to each folder (``gitrepo.remove_tree``). Deleting by whole
paths failed with ENAMETOOLONG, silently: every replaced worktree stayed on disk, and a
force-push back to that revision (a rollback) failed for ever."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources.gitrepo import remove_tree
from tests.sources.test_git import Clock, Remote, doc, isolate_git, source_for

# 66 folders of 60 characters: a 4 026-byte path in the commit, past PATH_MAX (4 096) once
# below a worktree of the state directory.
FOLDER = "d" * 60
DEPTH = 66


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def make_deep(top: Path, depth: int, name: str) -> None:
    """``top/name/name/...`` ``depth`` deep, with a file, a read-only file and a link out at
    the bottom, made relative to each folder (the whole path is past PATH_MAX)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        for leaf in ("x.yaml", "read-only.yaml"):
            os.close(os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o400, dir_fd=fd))
        os.symlink("/", "out", dir_fd=fd)  # followed, it would delete everything
    finally:
        os.close(fd)


def test_a_tree_past_path_max_is_removed_and_links_in_it_are_not_followed(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept").write_text("kept")
    top = tmp_path / "tree"
    make_deep(top, 20, "n" * 250)  # 5 000 bytes below tmp_path
    os.symlink(outside, top / "link-to-outside")
    with pytest.raises(OSError, match="File name too long") as whole:
        os.stat(str(top) + ("/" + "n" * 250) * 20)
    assert whole.value.errno == errno.ENAMETOOLONG  # what deleting by whole paths ran into

    remove_tree(top)
    assert not top.exists()
    assert (outside / "kept").read_text() == "kept"


def test_a_file_or_a_link_given_is_removed_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path)
    for name in ("file", "link"):
        remove_tree(tmp_path / name)
        assert not os.path.lexists(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        remove_tree(tmp_path / "missing")


def plumb(remote: Remote, *args: str, input: str | None = None) -> str:
    """git in the work clone, with ``input`` on its stdin."""
    done = subprocess.run(
        ["git", *args],
        cwd=remote.work,
        input=input,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def deep_commit(remote: Remote, parent: str) -> str:
    """A commit of ``parent`` plus ``tasks/<FOLDER>/.../x.txt`` ``DEPTH`` folders deep, made
    with git's plumbing (no file system path is that long) and pushed to main."""
    blob = plumb(remote, "hash-object", "-w", "--stdin", input="pad\n")
    tree = plumb(remote, "mktree", input=f"100644 blob {blob}\tx.txt\n")
    for _ in range(DEPTH - 1):  # and one more in tasks
        tree = plumb(remote, "mktree", input=f"040000 tree {tree}\t{FOLDER}\n")
    tasks = plumb(remote, "rev-parse", f"{parent}:tasks")
    listing = plumb(remote, "ls-tree", tasks) + f"\n040000 tree {tree}\t{FOLDER}\n"
    tasks = plumb(remote, "mktree", input=listing)
    root = plumb(remote, "mktree", input=f"040000 tree {tasks}\ttasks\n")
    commit = plumb(remote, "commit-tree", root, "-p", parent, "-m", "deep")
    remote.push(f"{commit}:refs/heads/main", force=True)
    return commit


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


def test_a_worktree_past_path_max_is_deleted_and_a_rollback_to_it_works(
    remote: Remote, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.sources.git")
    remote.write("tasks/a.yaml", doc("a"))
    first = remote.commit()
    deep = deep_commit(remote, first)
    source = source_for(remote, tmp_path / "state", Clock(), path="tasks")
    assert source.sync(), source.status().last_error
    assert source.status().applied_revision == deep
    assert len(str(source.worktrees / deep)) + DEPTH * (len(FOLDER) + 1) > 4096

    remote.write("tasks/b.yaml", doc("b"))
    later = remote.commit(force=True)  # on `first`: the work clone never had the deep folder
    assert source.sync()
    assert sorted(p.name for p in source.worktrees.iterdir()) == [later]  # the deep one went

    remote.push(f"{deep}:refs/heads/main", force=True)  # the rollback
    assert source.sync()
    status = source.status()
    assert (status.applied_revision, status.last_error) == (deep, None)
    assert sorted(p.name for p in source.worktrees.iterdir()) == [deep]
    assert caplog.records == []


@contextlib.contextmanager
def undeletable(path: Path) -> Iterator[None]:
    """``path`` cannot be unlinked: immutable (as root), else in a folder without write access."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
            pytest.skip("chattr +i is not available here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.parent.chmod(0o500)
        try:
            yield
        finally:
            path.parent.chmod(0o700)


def test_a_worktree_that_cannot_be_deleted_is_one_warning_not_a_failure(
    remote: Remote, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.sources.git")
    remote.write("tasks/a.yaml", doc("a"))
    first = remote.commit()
    source = source_for(remote, tmp_path / "state", Clock(), path="tasks")
    assert source.sync()
    stuck = source.worktrees / first / "tasks" / "a.yaml"
    with undeletable(stuck):
        for name in ("b", "c"):
            remote.write(f"tasks/{name}.yaml", doc(name))
            newer = remote.commit()
            assert source.sync()
            assert source.status().last_error is None
            assert source.status().applied_revision == newer
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["git worktree not deleted"]  # once per tree
    fields = warnings[0].__dict__["fields"]
    assert fields["worktree"] == str(source.worktrees / first)
    assert "a.yaml" in fields["error"]
    assert len(fields["error"]) <= 300
