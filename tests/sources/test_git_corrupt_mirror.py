"""The bare repository (``repo.git``) is a cache of the remote: one that a power loss left
damaged (a zero-length loose object or ref: git does not fsync them by default) failed every
fetch for ever, across restarts. Now a fetch that fails so deletes it, the revision in force
stays, and the next sync clones it again."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from reconciler.sources import gitmaintenance, gitrevisions
from reconciler.sources.git import GitSource
from reconciler.sources.gitprocess import GitError
from reconciler.sources.gitrepo import GitRepo, Redactor, git_env
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def mirror_git(source: GitSource, *args: str) -> str:
    repo = source.base / "repo.git"
    done = subprocess.run(
        ["git", f"--git-dir={repo}", *args], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def truncate_tree_object(source: GitSource) -> None:
    tree = mirror_git(source, "rev-parse", "refs/crontask/HEAD^{tree}")
    loose = source.base / "repo.git" / "objects" / tree[:2] / tree[2:]
    assert loose.is_file()  # a small fetch is kept as loose objects
    loose.chmod(0o600)
    loose.write_bytes(b"")


def truncate_ref(source: GitSource) -> None:
    (source.base / "repo.git" / "refs" / "crontask" / "HEAD").write_bytes(b"")


@pytest.mark.parametrize("damage", [truncate_tree_object, truncate_ref])
def test_a_damaged_mirror_is_cloned_again_and_the_revision_in_force_stays(
    damage: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    remote = Remote(tmp_path)
    remote.write("a.yaml", doc("a"))
    first = remote.commit()
    # A long path: git's first line ("object file <path> is empty") is then all the error
    # keeps of what it said (its "is corrupt" came after, and was cut).
    source = source_for(remote, tmp_path / ("deep" * 40) / "state", Clock())
    assert synced(source)
    assert callable(damage)
    damage(source)
    remote.write("b.yaml", doc("b"))
    second = remote.commit()

    assert synced(source) is False
    status = source.status()
    assert status.applied_revision == first
    assert "the local mirror was damaged: deleted, cloned again at the next sync" in (
        status.last_error or ""
    )
    assert set(schedules(source)) == {"default/a"}  # still read from the tree in force
    assert not (source.base / "repo.git").exists()
    deleted = [r for r in caplog.records if r.getMessage() == "git mirror damaged: deleted"]
    assert len(deleted) == 1

    assert synced(source)
    status = source.status()
    assert (status.applied_revision, status.last_error) == (second, None)
    assert set(schedules(source)) == {"default/a", "default/b"}
    assert sorted(p.name for p in source.worktrees.iterdir()) == [second]


def remove_tree_object(source: GitSource) -> None:
    """A tree gone (no zero-length file left): only git's walk of the refs finds it missing."""
    tree = mirror_git(source, "rev-parse", "refs/crontask/HEAD^{tree}")
    (source.base / "repo.git" / "objects" / tree[:2] / tree[2:]).unlink()


@pytest.mark.parametrize("damage", [None, truncate_tree_object, truncate_ref, remove_tree_object])
def test_the_damage_git_tells_of_is_found_in_the_mirror_itself(
    damage: object, tmp_path: Path
) -> None:
    """What ``discard_damaged`` asks before it deletes: git's words may be an ssh server's."""
    remote = Remote(tmp_path)
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", Clock())
    assert synced(source)
    if callable(damage):
        damage(source)
    repo = GitRepo(source.base / "repo.git", env=git_env(remote.url), timeout=60, redact=Redactor())
    assert gitmaintenance.found_damaged(repo) is (damage is not None)


def test_a_check_that_cannot_finish_keeps_the_mirror_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git's words of damage, and a check of the mirror cut short (its deadline here; its
    memory limit or a signal alike): nothing is found, so the mirror stays (a check out of
    memory deleted a sound one), it is said once, and not checked again at every sync."""
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    remote = Remote(tmp_path)
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", Clock())
    assert synced(source)
    remove_tree_object(source)  # a real damage: fsck would find it, had it time to
    monkeypatch.setattr(gitmaintenance, "check_timeout", lambda timeout: 1e-6)
    cut_short = GitRepo(
        source.base / "repo.git", env=git_env(remote.url), timeout=1e-6, redact=Redactor()
    )
    assert gitmaintenance.found_damaged(cut_short) is None
    checks: list[object] = []
    real = gitmaintenance.found_damaged

    def counted(repo: GitRepo) -> bool | None:
        checks.append(repo)
        return real(repo)

    monkeypatch.setattr(gitrevisions, "found_damaged", counted)
    said = GitError("fetch failed", said=["fatal: bad object 0123456789abcdef"])
    revisions = source._revisions
    revisions._made = None  # as at a later sync, which did not make the mirror
    mirror = gitrevisions.Mirror.KEPT
    assert revisions.discard_damaged(cut_short, said, source._clone_into) is mirror
    # Not checked again so soon.
    assert revisions.discard_damaged(cut_short, said, source._clone_into) is mirror
    assert len(checks) == 1
    assert (source.base / "repo.git").is_dir()
    kept = [r for r in caplog.records if "the check of it did not finish: kept" in r.getMessage()]
    assert len(kept) == 1
