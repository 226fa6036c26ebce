"""What a git source's git or crontask itself leaves when killed mid-way never stops later syncs.

``git worktree add`` first writes its record of the new worktree (``repo.git/worktrees/<sha>``:
``locked`` saying "initializing", a HEAD of zeros) and only then runs the ``update-ref`` that
sets its HEAD. Killed in between (a shutdown's cancel, the timeout, crontask killed), the record
stays: ``git worktree prune`` never removes a locked one, and every later ``git fetch`` failed
("bad object worktrees/<sha>/HEAD"), restarts included. The record is planted here as git leaves
it (killing git in that gap is a matter of microseconds). A ``git init`` killed in ``ensure``
leaves ``.repo.git.<pid>``, which no later process (another pid) looked at. Real git, as in
test_git."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sources.git import GitSource
from tests.sources.test_git import Clock, Remote, doc, git, isolate_git, schedules, source_for
from tests.sources.test_git import synced as synced_and_read

ZEROS = "0" * 40


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def plant_killed_add(source: GitSource, sha: str) -> Path:
    """The record ``git worktree add`` has written when it starts its ``update-ref`` child
    (builtin/worktree.c: add_worktree), for a checkout of ``sha`` into ``worktrees/<sha>``."""
    dest = source.worktrees / sha
    record = source.base / "repo.git" / "worktrees" / sha
    record.mkdir(parents=True)
    (record / "locked").write_text("initializing")
    (record / "gitdir").write_text(f"{dest}/.git\n")
    (record / "HEAD").write_text(f"{ZEROS}\n")
    (record / "commondir").write_text("../..\n")
    return record


def records(source: GitSource) -> list[str]:
    return sorted(p.name for p in (source.base / "repo.git" / "worktrees").iterdir())


def test_a_worktree_add_killed_before_its_head_was_set_stops_no_later_sync(
    tmp_path: Path,
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("a.yaml", doc("a", "1 * * * *"))
    first = remote.commit()
    source = source_for(remote, state, clock)
    assert synced_and_read(source)
    remote.write("a.yaml", doc("a", "2 * * * *"))
    killed = remote.commit()
    record = plant_killed_add(source, killed)

    # A restart: a new process, the same state directory.
    source = source_for(remote, state, clock)
    assert synced_and_read(source), source.status().last_error
    assert source.status().last_error is None
    assert source.status().applied_revision == killed
    assert schedules(source) == {"default/a": "2 * * * *"}
    assert records(source) == [killed]  # made anew: not `<sha>1` beside a leftover
    assert not (record / "locked").exists()

    # And the next commits are fetched and applied as ever.
    remote.write("a.yaml", doc("a", "3 * * * *"))
    third = remote.commit()
    assert synced_and_read(source)
    assert source.status().applied_revision == third
    assert schedules(source) == {"default/a": "3 * * * *"}
    listed = git("worktree", "list", "--porcelain", cwd=source.base / "repo.git")
    assert listed.count("worktree ") == 2  # the bare repository and current
    assert first not in listed


def test_a_leftover_record_of_a_revision_no_longer_wanted_is_deleted_before_the_fetch(
    tmp_path: Path,
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock)
    assert synced_and_read(source)
    applied = source.status().applied_revision
    assert applied is not None
    remote.write("a.yaml", doc("a", "2 * * * *"))
    plant_killed_add(source, remote.commit())
    remote.write("a.yaml", doc("a", "3 * * * *"))  # the remote moved on meanwhile
    newest = remote.commit()

    assert synced_and_read(source), source.status().last_error
    assert source.status().applied_revision == newest
    assert schedules(source) == {"default/a": "3 * * * *"}
    assert records(source) == [newest]


def test_the_record_of_the_revision_in_force_is_kept(tmp_path: Path) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("a.yaml", doc("a", "1 * * * *"))
    applied = remote.commit()
    source = source_for(remote, state, clock)
    assert synced_and_read(source)
    assert not synced_and_read(source)  # nothing new: the fetch runs, nothing changes
    assert source.status().last_error is None
    assert records(source) == [applied]


def test_a_repository_half_made_by_a_killed_process_is_deleted(tmp_path: Path) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock)
    # What `git init --bare` of an ensure killed mid-way leaves, under that process's pid.
    scratch = source.base / ".repo.git.4194301"
    git("init", "--bare", "--quiet", str(scratch))
    assert synced_and_read(source)
    assert not scratch.exists()
    assert (source.base / "repo.git" / "HEAD").is_file()
    # Only crontask's scratch names: anything else here is not touched.
    other = source.base / ".repo.git.not-a-pid"
    other.mkdir()
    assert not synced_and_read(source)
    assert other.is_dir()
