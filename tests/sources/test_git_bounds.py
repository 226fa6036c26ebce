"""A hostile commit: links out of the repository, an alias bomb, a file over the size limit.
Each is a definition error of its path, the tasks it defined keep their last good definition,
and nothing outside the worktree is ever read. Real git, as in test_git."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Collection
from pathlib import Path

import pytest

from reconciler.sources import gitcheckout
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitrepo import GitRepo
from tests.sources.test_documents_bounds import sequence_bomb
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, synced


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def test_a_link_out_of_the_repository_is_refused_and_one_inside_is_followed(
    tmp_path: Path,
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    shadow = tmp_path / "shadow"
    shadow.write_text("root:$6$hash:19000:0:99999:7:::\n")
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.write("shared/b.yaml", doc("b"))
    remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=clock)
    assert synced(source)

    # One commit: a.yaml becomes a link to a file of the host, and a link to another file of
    # the same commit (outside --git-path, inside the repository) appears.
    (remote.work / "tasks" / "a.yaml").unlink()
    os.symlink(shadow, remote.work / "tasks" / "a.yaml")
    os.symlink("../shared/b.yaml", remote.work / "tasks" / "b.yaml")
    # From <state>/git/<key>/worktrees/<sha>/tasks/ into crontask's own state directory.
    os.symlink("../../../repo.git/HEAD", remote.work / "tasks" / "state.yaml")
    sha = remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "* * * * *"}
    errors = sorted(str(e) for e in source.errors())
    message = "a symbolic link that leads outside the repository: not read"
    assert errors == [
        f"tasks/a.yaml:1:1: {message} (revision {sha[:12]})",
        f"tasks/state.yaml:1:1: {message} (revision {sha[:12]})",
    ]
    assert all("root:" not in e for e in errors)


def test_a_task_file_replaced_by_a_link_to_nothing_keeps_its_task(tmp_path: Path) -> None:
    """A link to a file the commit lacks, or to one this host lacks: an error, no deletion."""
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.write("tasks/b.yaml", doc("b", "2 * * * *"))
    remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=clock)
    assert synced(source)
    for name, target in (("a.yaml", "../shared/a.yaml"), ("b.yaml", "/opt/tasks/b.yaml")):
        (remote.work / "tasks" / name).unlink()
        os.symlink(target, remote.work / "tasks" / name)
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "2 * * * *"}
    assert sorted(e.location.path for e in source.errors()) == ["tasks/a.yaml", "tasks/b.yaml"]


def test_a_link_longer_than_any_path_is_refused_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git takes a link of any size: five of 4 MiB each, zeros, travel as a few KiB. They are
    never read into memory here; no file system takes them, so the revision cannot be
    checked out, and the one before stays."""
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=clock)
    assert synced(source)
    huge = set()
    for i in range(5):
        target = b"x" * (4 * 1024 * 1024) + str(i).encode()
        hashed = subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=remote.work,
            input=target,
            check=True,
            capture_output=True,
        )
        oid = hashed.stdout.decode().strip()
        remote.git("update-index", "--add", "--cacheinfo", f"120000,{oid},tasks/link{i}.yaml")
        huge.add(oid)
    remote.commit(stage=False)
    asked: list[str] = []
    real = gitcheckout.read_blobs

    def read_blobs(repo: GitRepo, oids: Collection[str]) -> dict[str, bytes]:
        asked.extend(oids)
        return real(repo, oids)

    monkeypatch.setattr(gitcheckout, "read_blobs", read_blobs)
    assert not synced(source)
    assert not huge & set(asked)
    assert "File name too long" in (source.status().last_error or "")
    assert schedules(source) == {"default/a": "1 * * * *"}


def test_a_commit_with_an_alias_bomb_or_a_big_file_keeps_the_last_good_tasks(
    tmp_path: Path,
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("a.yaml", doc("a", "1 * * * *"))
    remote.write("b.yaml", doc("b", "2 * * * *"))
    remote.commit()
    source = GitSource(GitOptions(remote.url), state, clock=clock, max_file_size=4096)
    assert synced(source)
    remote.write("a.yaml", sequence_bomb().replace("name: bomb", "name: a"))
    remote.write("b.yaml", doc("b", "3 * * * *") + "#" * 5000 + "\n")
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "2 * * * *"}
    errors = sorted(e.message for e in source.errors())
    assert errors[0].startswith("YAML aliases expand this value to more than 10000 values")
    assert errors[1].startswith("file is 5")
    assert "over the limit of 4 KiB" in errors[1]


def sparse_zeros(path: Path, size: int) -> None:
    """A file of ``size`` zero bytes that takes no room here (git stores it as a few KiB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size)


def disk_usage(top: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in top.rglob("*"))


def test_only_the_path_and_what_its_links_lead_to_are_written(tmp_path: Path) -> None:
    """A GiB of zeros travels as a MiB: a file outside --git-path, whatever its size, is
    never written to disk; a link in the path to a file outside it still works."""
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.write("shared/b.yaml", doc("b", "2 * * * *"))
    os.symlink("../shared/b.yaml", remote.work / "tasks" / "b.yaml")
    remote.write("shared/c.yaml", doc("c", "3 * * * *"))
    os.symlink("shared", remote.work / "alias")  # a link on the way of another
    os.symlink("../alias/c.yaml", remote.work / "tasks" / "c.yaml")
    sparse_zeros(remote.work / "junk" / "zeros.bin", 64 * 1024 * 1024)
    remote.write("other.yaml", doc("other"))
    sha = remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=clock)
    assert synced(source)
    assert source.status().applied_revision == sha
    assert schedules(source) == {
        "default/a": "1 * * * *",
        "default/b": "2 * * * *",
        "default/c": "3 * * * *",
    }
    assert source.errors() == []
    tree = source.worktrees / sha
    assert not (tree / "junk").exists()
    assert not (tree / "other.yaml").exists()
    assert disk_usage(tree) < 1024 * 1024


@pytest.mark.parametrize(
    ("limits", "big", "reason"),
    [
        (
            {},
            1024 * 1024,
            "'tasks/big.bin' is 1048576 bytes, over the 65536 a checked-out file may have",
        ),
        ({"max_files": 3}, 0, "more than 3 files to check out"),
        ({"max_total": 30_000}, 40_000, "more than 30000 bytes to check out"),
    ],
    ids=["file", "files", "bytes"],
)
def test_a_revision_over_the_checkout_bounds_is_refused_and_the_one_before_stays(
    tmp_path: Path, limits: dict[str, int], big: int, reason: str
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    good = remote.commit()
    # Files may be 16 times --max-file-size: reading refuses one a little over it alone.
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=clock, max_file_size=4096)
    if limits:  # a few files, a few bytes, for the bounds of 100 000 files and 256 MiB
        source._revisions.limits = dataclasses.replace(source._revisions.limits, **limits)
    assert synced(source)

    remote.write("tasks/a.yaml", doc("a", "2 * * * *"))
    remote.write("tasks/b.yaml", doc("b"))
    remote.write("tasks/c.yaml", doc("c"))
    sparse_zeros(remote.work / "tasks" / "big.bin", big)
    refused = remote.commit()
    assert synced(source) is False
    status = source.status()
    assert status.last_error == f"revision {refused[:12]} refused: {reason} (retrying in 60s)"
    assert (status.applied_revision, status.attempted_revision) == (good, refused)
    assert schedules(source) == {"default/a": "1 * * * *"}
    assert [p.name for p in source.worktrees.iterdir()] == [good]

    remote.rm("tasks/big.bin")
    remote.rm("tasks/c.yaml")
    fixed = remote.commit()
    assert synced(source)
    assert source.status().applied_revision == fixed
    assert schedules(source) == {"default/a": "2 * * * *", "default/b": "* * * * *"}


def test_other_branches_are_not_fetched(tmp_path: Path) -> None:
    """Anyone who may push a branch may push a blob of any size to it, or a name no file
    system takes (a 300-byte component in the remote's packed-refs): neither may fill the
    state directory or fail every fetch of the ref crontask follows."""
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("a.yaml", doc("a", "1 * * * *"))
    good = remote.commit()
    remote.git("checkout", "--quiet", "-b", "junk")
    sparse_zeros(remote.work / "junk.bin", 32 * 1024 * 1024)
    (remote.work / "noise.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    remote.commit(branch="junk")
    remote.git("checkout", "--quiet", "main")
    with (remote.bare / "packed-refs").open("a") as packed:
        packed.write(f"{good} refs/heads/feature/{'x' * 300}\n")
    for ref in ("main", "refs/heads/main", "HEAD"):
        source = GitSource(
            GitOptions(remote.url, ref=ref), state / ref.replace("/", "-"), clock=clock
        )
        assert synced(source), source.status().last_error
        assert schedules(source) == {"default/a": "1 * * * *"}
        assert disk_usage(source.base / "repo.git") < 1024 * 1024
