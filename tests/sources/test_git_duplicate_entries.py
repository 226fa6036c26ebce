"""A hostile commit whose tree lists one name twice: a small task file, then a file over the
checkout bounds under the same name. git's receive and fetch check no objects (unless
``fsckObjects`` is set, which crontask leaves alone), so such a tree reaches the mirror; the
checkout plan counted one entry while ``git checkout`` wrote the other (a 4.7 MB push wrote
3 GiB). The revision is refused whole, whatever the two entries are, before anything is
written. So is a tree with a name holding a "/" (``a.yaml/x.yaml`` beside the task file
``a.yaml``): git checked out the first and not the second, exit 0, and the task was removed
without an error. Real git, as in test_git; the tree is written as raw bytes (``hash-object
--literally``), as a client can push it."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, synced

BIG = 128 * 1024  # over the 64 KiB a checked-out file may have with --max-file-size 4096
REASON = "{!r} is listed twice in one of its trees (a malformed tree, which git fsck refuses)"
BOTH = '{!r} is both a file and a folder in one of its trees (a malformed tree: a name with a "/")'
SLASHED = '{!r} is a name with a "/" in one of its trees (a malformed tree)'


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def git_out(remote: Remote, *args: str, input: bytes = b"") -> str:
    result = subprocess.run(
        ["git", *args], cwd=remote.work, input=input, capture_output=True, check=True, timeout=60
    )
    return result.stdout.decode().strip()


def blob(remote: Remote, content: bytes) -> str:
    return git_out(remote, "hash-object", "-w", "--stdin", input=content)


def tree(remote: Remote, entries: Sequence[tuple[str, str, str]]) -> str:
    """A tree listing ``entries`` (mode, name, object id) in this order, repeats included
    (``git mktree`` may sort them, or refuse them in a later git)."""
    raw = b"".join(f"{mode} {name}\0".encode() + bytes.fromhex(oid) for mode, name, oid in entries)
    return git_out(remote, "hash-object", "-t", "tree", "-w", "--literally", "--stdin", input=raw)


def hostile_root(remote: Remote, case: str) -> tuple[str, str]:
    """The root tree of the case's commit, and why it is refused: the path it lists twice, or
    the first bound its listing passes (read as it comes, a listing stops there)."""
    small = blob(remote, doc("a", "2 * * * *").encode())
    big = blob(remote, b"\0" * BIG)
    if case == "folder twice":  # "tasks" twice: a folder of a task, then one of a big file
        first = tree(remote, [("100644", "a.yaml", small)])
        second = tree(remote, [("100644", "big.bin", big)])
        root = tree(remote, [("40000", "tasks", first), ("40000", "tasks", second)])
        return root, REASON.format("tasks")
    if case == "behind a link":  # tasks/b.yaml -> ../shared/b.yaml, listed twice there
        link = blob(remote, b"../shared/b.yaml")
        tasks = tree(remote, [("100644", "a.yaml", small), ("120000", "b.yaml", link)])
        shared = tree(remote, [("100644", "b.yaml", small), ("100644", "b.yaml", big)])
        root = tree(remote, [("40000", "shared", shared), ("40000", "tasks", tasks)])
        return root, REASON.format("shared/b.yaml")
    other = blob(remote, doc("b", "2 * * * *").encode())
    slashed = {  # a file and a name with a "/" under it, in either order, or behind a link
        "file and folder": [("100644", "a.yaml", small), ("100644", "a.yaml/x.yaml", other)],
        "folder first": [("100644", "a.yaml/x.yaml", other), ("100644", "a.yaml", small)],
        "deeper": [("100644", "a.yaml", small), ("100644", "a.yaml/b/x.yaml", other)],
    }
    if case in slashed:
        root = tree(remote, [("40000", "tasks", tree(remote, slashed[case]))])
        if case == "file and folder":
            return root, BOTH.format("tasks/a.yaml")
        return root, SLASHED.format(
            "tasks/a.yaml/" + ("x.yaml" if case != "deeper" else "b/x.yaml")
        )
    if case == "slashed behind a link":  # shared/ is listed alone, not recursively
        link = blob(remote, b"../shared/b.yaml")
        tasks = tree(remote, [("100644", "a.yaml", small), ("120000", "b.yaml", link)])
        shared = tree(remote, [("100644", "b.yaml", other), ("100644", "b.yaml/x", small)])
        root = tree(remote, [("40000", "shared", shared), ("40000", "tasks", tasks)])
        return root, BOTH.format("shared/b.yaml")
    pairs = {
        "bigger second": (small, big),
        "bigger first": (big, small),
        "same blob": (small, small),
    }
    entries = [("100644", "a.yaml", oid) for oid in pairs[case]]
    root = tree(remote, [("40000", "tasks", tree(remote, entries))])
    if case == "bigger first":
        return root, f"'tasks/a.yaml' is {BIG} bytes, over the 65536 a checked-out file may have"
    return root, REASON.format("tasks/a.yaml")


@pytest.mark.parametrize(
    "case",
    [
        "bigger second",
        "bigger first",
        "same blob",
        "folder twice",
        "behind a link",
        "file and folder",
        "folder first",
        "deeper",
        "slashed behind a link",
    ],
)
def test_a_tree_listing_a_path_twice_is_refused_and_the_revision_before_stays(
    tmp_path: Path, case: str
) -> None:
    remote = Remote(tmp_path)
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    good = remote.commit()
    source = GitSource(
        GitOptions(remote.url, path="tasks"), tmp_path / "state", clock=Clock(), max_file_size=4096
    )
    assert synced(source)

    root, reason = hostile_root(remote, case)
    refused = git_out(remote, "commit-tree", "-p", good, "-m", "hostile", root)
    remote.push(f"{refused}:refs/heads/main")
    assert synced(source) is False
    status = source.status()
    assert status.last_error == f"revision {refused[:12]} refused: {reason} (retrying in 60s)"
    assert (status.applied_revision, status.attempted_revision) == (good, refused)
    assert (status.sync_failures, status.consecutive_failures) == (1, 1)
    assert schedules(source) == {"default/a": "1 * * * *"}
    assert [p.name for p in source.worktrees.iterdir()] == [good]  # nothing of it written

    remote.write("tasks/a.yaml", doc("a", "3 * * * *"))
    fixed = remote.commit(force=True)
    assert synced(source)
    assert source.status().applied_revision == fixed
    assert schedules(source) == {"default/a": "3 * * * *"}
