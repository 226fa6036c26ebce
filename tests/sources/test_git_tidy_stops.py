"""The deletion of older worktrees (after a switch, and of a leftover at a start's first sync)
ends when crontask is asked to stop: a leftover of 60 000 files held a SIGTERM 88 s (the
pod was killed at 30 s, and the leftover was there again at the next start). ``tidy`` now
hands ``stopped`` down to each tree's deletion; what is left is deleted next time, and the
revision in force is never touched."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.sources.gitcheckout import CheckoutLimits
from reconciler.sources.gitmaintenance import tidy
from reconciler.sources.gitrevisions import Revisions

IN_FORCE = "a" * 40
LEFTOVER = "b" * 40


class StopAfter:
    """A ``stopped`` that says so from its ``n``-th question on."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked > self.n


def revisions_with_leftover(base: Path, files: int) -> Revisions:
    """A source folder whose ``current`` leads to ``IN_FORCE``, beside a leftover worktree of
    ``files`` files in a few folders."""
    for sha in (IN_FORCE, LEFTOVER):
        (base / "worktrees" / sha / "tasks").mkdir(parents=True)
    (base / "worktrees" / IN_FORCE / "tasks" / "a.yaml").write_text("kept")
    for i in range(files):
        folder = base / "worktrees" / LEFTOVER / "tasks" / f"d{i % 5}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.yaml").write_text("x")
    (base / "current").symlink_to(f"worktrees/{IN_FORCE}")
    revisions = Revisions(base, path="tasks", limits=CheckoutLimits(max_file=1024))
    assert revisions.applied == IN_FORCE
    return revisions


def files_in(tree: Path) -> int:
    return sum(1 for p in tree.rglob("*") if p.is_file())


def test_a_stop_ends_the_deletion_of_a_leftover_and_the_next_tidy_ends_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    revisions = revisions_with_leftover(tmp_path, files=500)
    leftover = tmp_path / "worktrees" / LEFTOVER
    stopped = StopAfter(50)

    tidy(revisions, None, stopped)  # raises nothing

    # Asked once more than it said no, then left alone: the rest of the tree stays.
    assert stopped.asked == 51
    left = files_in(leftover)
    assert 500 - 50 <= left < 500
    assert (tmp_path / "worktrees" / IN_FORCE / "tasks" / "a.yaml").read_text() == "kept"
    messages = [r.getMessage() for r in caplog.records]
    assert any("cut short by the stop" in m for m in messages), messages
    assert not any("not deleted" in m for m in messages), messages  # a stop is no failure

    tidy(revisions, None, lambda: False)  # the next switch, or the next start's first sync
    assert not leftover.exists()
    assert sorted(p.name for p in (tmp_path / "worktrees").iterdir()) == [IN_FORCE]
    assert not any("not deleted" in r.getMessage() for r in caplog.records)
