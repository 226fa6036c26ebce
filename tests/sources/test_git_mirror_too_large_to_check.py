"""A mirror git says is damaged, whose check cannot finish (a mirror too large for the check's
deadline or memory limit): it was kept, and fetches failed for ever until an operator deleted
it. After ``CHECK_LIMIT`` such checks in a row, a new clone is made beside it, and it takes the
mirror's place only once its fetch succeeded: a sound mirror is never deleted before a
replacement exists."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.sources import gitmaintenance, gitrevisions
from reconciler.sources.git import GitSource
from reconciler.sources.gitprocess import GitError
from reconciler.sources.gitrepo import GitRepo, Redactor, git_env
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced
from tests.sources.test_git_corrupt_mirror import truncate_ref


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.fixture
def unfinished(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check of the mirror cut short by its deadline, and each may run at once."""
    monkeypatch.setattr(gitmaintenance, "check_timeout", lambda timeout: 1e-6)
    monkeypatch.setattr(gitrevisions, "CHECK_AGAIN", 0.0)


def damaged_source(tmp_path: Path) -> tuple[Remote, GitSource, str]:
    remote = Remote(tmp_path)
    remote.write("a.yaml", doc("a"))
    first = remote.commit()
    source = source_for(remote, tmp_path / "state", Clock())
    assert synced(source)
    # A real damage, which fails each fetch: the check would find it, had it time to.
    truncate_ref(source)
    remote.write("b.yaml", doc("b"))
    remote.commit()
    return remote, source, first


def test_damage_whose_check_never_finishes_gets_a_new_clone_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, unfinished: None
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    remote, source, first = damaged_source(tmp_path)
    mirror = source.base / "repo.git"
    inode = mirror.stat().st_ino
    for _ in range(gitrevisions.CHECK_LIMIT - 1):
        assert synced(source) is False
        assert mirror.stat().st_ino == inode  # kept while only unchecked
        assert source.status().applied_revision == first
    kept = [r for r in caplog.records if "the check of it did not finish: kept" in r.getMessage()]
    assert len(kept) == gitrevisions.CHECK_LIMIT - 1

    assert synced(source) is False  # this fetch failed; a new clone took the mirror's place
    assert "cloned anew beside it, in its place" in (source.status().last_error or "")
    assert mirror.stat().st_ino != inode
    assert sorted(p.name for p in source.base.iterdir() if "repo" in p.name) == ["repo.git"]
    replaced = [r for r in caplog.records if r.getMessage() == "git mirror replaced by a new clone"]
    assert len(replaced) == 1

    assert synced(source)
    status = source.status()
    assert (status.applied_revision, status.last_error) == (remote.git("rev-parse", "HEAD"), None)
    assert set(schedules(source)) == {"default/a", "default/b"}


def test_a_replacement_whose_fetch_fails_leaves_the_mirror_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, unfinished: None
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    remote, source, _ = damaged_source(tmp_path)
    mirror = source.base / "repo.git"
    inode = mirror.stat().st_ino
    for _ in range(gitrevisions.CHECK_LIMIT - 1):
        assert synced(source) is False
    remote.bare.rename(remote.bare.with_name("gone.git"))  # the clone cannot be made
    repo = source._repo(None, Redactor())
    said = GitError("fetch failed", said=["fatal: bad object 0123"])
    assert source._revisions.discard_damaged(repo, said, source._clone_into) is (
        gitrevisions.Mirror.KEPT
    )
    assert mirror.stat().st_ino == inode
    assert sorted(p.name for p in source.base.iterdir() if "repo" in p.name) == ["repo.git"]
    failed = [
        r for r in caplog.records if r.getMessage() == "git mirror kept: its new clone failed"
    ]
    assert len(failed) == 1


def test_the_check_has_a_deadline_of_its_own(tmp_path: Path) -> None:
    """Local work whose length grows with the mirror: a --git-timeout fit for a fetch (a tiny
    one here) no longer cuts it short."""
    _, source, _ = damaged_source(tmp_path)
    repo = GitRepo(
        source.base / "repo.git", env=git_env("file:///x"), timeout=1e-6, redact=Redactor()
    )
    assert gitmaintenance.found_damaged(repo) is True


def test_a_stop_during_the_new_clone_is_not_said_a_failed_clone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, unfinished: None
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    _, source, _ = damaged_source(tmp_path)
    mirror = source.base / "repo.git"
    inode = mirror.stat().st_ino
    for _ in range(gitrevisions.CHECK_LIMIT - 1):
        assert synced(source) is False
    source.cancel()  # crontask stopping: the clone's git is cancelled
    repo = source._repo(None, Redactor())
    said = GitError("fetch failed", said=["fatal: bad object 0123"])
    assert source._revisions.discard_damaged(repo, said, source._clone_into) is (
        gitrevisions.Mirror.KEPT
    )
    assert mirror.stat().st_ino == inode
    assert sorted(p.name for p in source.base.iterdir() if "repo" in p.name) == ["repo.git"]
    messages = [r.getMessage() for r in caplog.records]
    assert "git mirror kept: its new clone failed" not in messages
    assert "git mirror kept: its new clone cut short by the stop" in messages
