"""A hostile commit whose trees are huge: tens of thousands of empty files or folders under
--git-path (``git mktree`` makes them in a moment, and they push as a few megabytes), or a path
no file system takes. The revision is refused with the message of its bound, as soon as the
listing passes it: git's listing is read as it comes, and git is killed, not read to the end.
Real git, as in test_git."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources import gitcheckout
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitprocess import GitError
from reconciler.sources.gitrepo import GitRepo, Redactor, git_env
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, synced

MANY = 50_000  # ls-tree writes some 4 MB for them: more than a pipe holds, so git must wait


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


class GitCalls:
    """Every ``git ls-tree`` run, and how many tree entries were made of what git listed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ls_trees: list[subprocess.Popen[bytes]] = []
        self.entries = 0
        calls, made = self, gitcheckout.TreeEntry

        class Recorded(subprocess.Popen[bytes]):
            def __init__(self, args: list[str], *rest: Any, **options: Any) -> None:
                super().__init__(args, *rest, **options)
                if "ls-tree" in args:
                    calls.ls_trees.append(self)

        def entry(*fields: Any) -> gitcheckout.TreeEntry:
            calls.entries += 1
            return made(*fields)

        monkeypatch.setattr(subprocess, "Popen", Recorded)
        monkeypatch.setattr(gitcheckout, "TreeEntry", entry)

    def reset(self) -> None:
        self.ls_trees.clear()
        self.entries = 0


def mktree(remote: Remote, lines: Iterable[str]) -> str:
    text = "".join(f"{line}\n" for line in lines)
    return run_git(remote, "mktree", input=text)


def run_git(remote: Remote, *args: str, input: str = "") -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=remote.work,
        input=input,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def push_tasks_tree(remote: Remote, lines: Iterable[str]) -> str:
    """A commit on main whose ``tasks`` folder holds ``lines`` (``git mktree`` entries)."""
    tasks = mktree(remote, lines)
    root = mktree(remote, [f"040000 tree {tasks}\ttasks"])
    sha = run_git(remote, "commit-tree", "-p", "HEAD", "-m", "hostile", root)
    remote.push(f"{sha}:refs/heads/main")
    return sha


def good_source(tmp_path: Path, remote: Remote, **limits: int) -> tuple[GitSource, str]:
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    good = remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), tmp_path / "state", clock=Clock())
    source._revisions.limits = dataclasses.replace(source._revisions.limits, **limits)
    assert synced(source)
    return source, good


def assert_refused(source: GitSource, good: str, refused: str, reason: str) -> None:
    status = source.status()
    assert status.last_error == f"revision {refused[:12]} refused: {reason} (retrying in 60s)"
    assert (status.applied_revision, status.attempted_revision) == (good, refused)
    assert schedules(source) == {"default/a": "1 * * * *"}
    assert [p.name for p in source.worktrees.iterdir()] == [good]


def test_a_tree_of_more_files_than_the_bound_is_refused_without_listing_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = Remote(tmp_path)
    source, good = good_source(tmp_path, remote, max_files=10)
    empty = run_git(remote, "hash-object", "-w", "--stdin")
    refused = push_tasks_tree(remote, (f"100644 blob {empty}\tf{i:05}.yaml" for i in range(MANY)))
    calls = GitCalls(monkeypatch)

    assert synced(source) is False
    assert_refused(source, good, refused, "more than 10 files to check out")
    # The root's listing ("tasks", to find the path), then that of "tasks": itself, and files
    # up to the eleventh, of the 50 001 entries git would list.
    assert calls.entries == 1 + 12
    [root, listing] = calls.ls_trees
    assert root.returncode == 0
    assert listing.returncode == -signal.SIGKILL  # stopped while blocked on a full pipe
    assert listing.stdout is not None
    assert listing.stdout.closed


def test_a_tree_of_more_empty_folders_than_the_bound_is_refused_as_it_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders are no files to check out, yet a million empty ones are as cheap to push."""
    remote = Remote(tmp_path)
    source, good = good_source(tmp_path, remote, max_entries=100)
    empty_tree = mktree(remote, [])
    lines = (f"040000 tree {empty_tree}\td{i:05}" for i in range(MANY))
    refused = push_tasks_tree(remote, lines)
    calls = GitCalls(monkeypatch)

    assert synced(source) is False
    assert_refused(source, good, refused, "more than 100 entries to list")
    assert calls.entries == 101
    [_, listing] = calls.ls_trees
    assert listing.returncode == -signal.SIGKILL


def test_a_path_longer_than_a_file_system_takes_is_refused(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    source, good = good_source(tmp_path, remote)
    blob = run_git(remote, "hash-object", "-w", "--stdin", input=doc("b"))
    refused = push_tasks_tree(remote, [f"100644 blob {blob}\t{'b' * 5000}.yaml"])

    assert synced(source) is False
    assert_refused(source, good, refused, "a path of more than 4096 bytes")


def bare_repo(remote: Remote) -> GitRepo:
    return GitRepo(remote.bare, env=git_env(remote.url), timeout=30, redact=Redactor())


def test_a_listing_stopped_or_cancelled_midway_leaves_no_git_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = Remote(tmp_path)
    remote.commit()
    empty = run_git(remote, "hash-object", "-w", "--stdin")
    push_tasks_tree(remote, (f"100644 blob {empty}\tf{i:05}.yaml" for i in range(MANY)))
    repo = bare_repo(remote)
    calls = GitCalls(monkeypatch)
    args = ["ls-tree", "-z", "-r", "main"]

    listing = repo.run_records(args, separator=b"\0", max_record=4096)
    assert next(listing).endswith(b"\ttasks/f00000.yaml")
    listing.close()
    [stopped] = calls.ls_trees
    assert stopped.returncode == -signal.SIGKILL

    calls.reset()
    listing = repo.run_records(args, separator=b"\0", max_record=4096)
    next(listing)
    repo.cancel()
    with pytest.raises(GitError, match=r"^git ls-tree cancelled$"):
        list(listing)
    [cancelled] = calls.ls_trees
    assert cancelled.returncode == -signal.SIGKILL


def test_a_failed_listing_says_what_git_said(tmp_path: Path) -> None:
    listing = bare_repo(Remote(tmp_path)).run_records(
        ["ls-tree", "-z", "nothing"], separator=b"\0", max_record=4096
    )
    with pytest.raises(GitError, match=r"^Not a valid object name nothing$"):
        list(listing)


@pytest.mark.parametrize(
    ("attributes", "encoding"),
    [
        ("b.yaml ident\n", "utf-8"),  # each $Id$ written 40 hex digits longer
        ("b.yaml working-tree-encoding=UTF-32LE\n", "utf-32-le"),  # four times as long
        ("b.yaml eol=crlf\n", "utf-8"),  # a byte more a line
    ],
    ids=["ident", "encoding", "eol"],
)
def test_a_commits_attributes_do_not_make_a_file_other_than_its_blob(
    tmp_path: Path, attributes: str, encoding: str
) -> None:
    """The sizes a checkout is bounded by are the blobs': a commit's .gitattributes multiplied
    what was written (a 12 MB blob of $Id$ became a 141 MB file)."""
    remote = Remote(tmp_path)
    source, _ = good_source(tmp_path, remote)
    blob = "# $Id$\n" * 1000 + doc("b")
    remote.write("tasks/.gitattributes", attributes)
    # As the committer's own checkout holds it: git stores the blob as UTF-8.
    (remote.work / "tasks" / "b.yaml").write_bytes(blob.encode(encoding))
    sha = remote.commit()
    assert remote.git("cat-file", "-p", f"{sha}:tasks/b.yaml") == blob.strip("\n")
    assert synced(source)
    assert (source.worktrees / sha / "tasks" / "b.yaml").read_bytes() == blob.encode()
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "* * * * *"}
