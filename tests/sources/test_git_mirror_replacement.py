"""The new clone that takes the place of a mirror whose damage check never finishes
(``Revisions._replace``): how often a remote can make crontask clone it whole, and what a
crontask killed in the middle of the swap finds at its next start."""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest

from reconciler.sources import gitmaintenance, gitrevisions
from reconciler.sources.gitprocess import GitError
from reconciler.sources.gitrepo import Redactor
from tests.sources.test_git import Clock, isolate_git, source_for, synced
from tests.sources.test_git_mirror_too_large_to_check import damaged_source


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def test_a_remote_saying_damage_gets_one_clone_per_limit_of_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ssh server's stderr can say `fatal: bad object` at every fetch, and a large mirror
    is never checked within its deadline: each new clone comes after CHECK_LIMIT checks,
    CHECK_AGAIN apart, as the first one did (the check after a new clone waits too)."""
    monkeypatch.setattr(gitmaintenance, "check_timeout", lambda timeout: 1e-6)
    now = [0.0]
    monkeypatch.setattr(gitrevisions, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    _, source, _ = damaged_source(tmp_path)
    repo = source._repo(None, Redactor())
    said = GitError("fetch failed", said=["fatal: bad object 0123"])
    source._revisions._made = None  # as at a later sync, which did not make the mirror
    clones: list[float] = []
    for minute in range(120):  # a failed fetch each minute for two hours
        now[0] = minute * 60.0
        mirror = source._revisions.discard_damaged(repo, said, source._clone_into)
        if mirror is gitrevisions.Mirror.REPLACED:
            clones.append(now[0])
    # The first after CHECK_LIMIT checks (the first one at once), then one per CHECK_LIMIT.
    first = (gitrevisions.CHECK_LIMIT - 1) * gitrevisions.CHECK_AGAIN
    spacing = gitrevisions.CHECK_LIMIT * gitrevisions.CHECK_AGAIN
    assert clones == [first + n * spacing for n in range(4)]  # 20, 50, 80, 110 minutes


def test_a_kill_between_the_two_renames_keeps_the_new_clone(tmp_path: Path) -> None:
    """Killed after the mirror was renamed aside and before the new clone (whose fetch had
    succeeded) took its name: the next start puts the new clone in place, not a third
    clone of the whole remote."""
    remote, source, _ = damaged_source(tmp_path)
    mirror = source.base / "repo.git"
    repo = source._repo(None, Redactor())
    new = repo.beside(source.base / gitrevisions.REPLACEMENT)
    source._clone_into(new)  # the new clone, fetched
    os.rename(mirror, source.base / gitrevisions.REPLACED)  # and the kill: no second rename
    # Not its inode: a third clone made after deleting both may well be given it again.
    (new.git_dir / "marked-by-the-test").touch()

    restarted = source_for(remote, tmp_path / "state", Clock())
    assert synced(restarted)
    assert (mirror / "marked-by-the-test").exists()
    assert sorted(p.name for p in source.base.iterdir() if "repo" in p.name) == ["repo.git"]
    assert restarted.status().applied_revision == remote.git("rev-parse", "HEAD")
