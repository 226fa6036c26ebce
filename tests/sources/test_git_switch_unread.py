"""A revision that breaks a file, put in force (``current`` moved) by a crontask that stopped or
was killed before a pass read it: the kept copy of the file's last good definitions is written
by that read (``keptfiles``), so the next start found only the broken text, and the file's
tasks were gone, silently. The revision before is put back in force at the start, and the
first sync applies the new one again, read this time with the good definitions in memory.
Real git."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def _broken(name: str, schedule: str) -> str:
    return doc(name, schedule).replace(f'"{schedule}"', '"* * * *"')


def test_a_revision_switched_to_but_never_read_keeps_the_broken_files_tasks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.write("tasks/b.yaml", doc("b", "2 * * * *"))
    good = remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    remote.write("tasks/a.yaml", _broken("a", "1 * * * *"))
    remote.write("tasks/b.yaml", doc("b", "5 * * * *"))
    broken = remote.commit()
    assert source.sync()  # `current` moved; the process ends before a pass reads it
    assert source.status().revision == broken

    again = source_for(remote, state, clock, path="tasks")  # the restart
    again.read_ahead(1)
    assert again.status().revision == good
    assert "the one before is put back in force" in caplog.text
    again.refresh()
    assert schedules(again) == {"default/a": "1 * * * *", "default/b": "2 * * * *"}
    assert synced(again)  # the new revision, read this time
    assert again.status().revision == broken
    assert schedules(again) == {"default/a": "1 * * * *", "default/b": "5 * * * *"}
    assert [e.location.path for e in again.errors()] == ["tasks/a.yaml"]

    third = source_for(remote, state, clock, path="tasks")  # read: nothing put back
    assert third.status().revision == broken
    third.read_ahead(1)
    third.refresh()
    assert schedules(third) == {"default/a": "1 * * * *", "default/b": "5 * * * *"}


def test_the_record_goes_once_the_new_revision_was_read(tmp_path: Path) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    assert not list(state.glob("git/*/unread"))  # the first revision: none before it
    remote.write("tasks/a.yaml", doc("a", "2 * * * *"))
    new = remote.commit()
    assert source.sync()
    assert list(state.glob("git/*/unread"))
    source.refresh()
    assert not list(state.glob("git/*/unread"))
    again = source_for(remote, state, clock, path="tasks")
    again.read_ahead(1)
    assert again.status().revision == new
    assert {p.name for p in state.glob("git/*/worktrees/*")} == {new}


def test_a_revision_before_that_cannot_be_checked_out_leaves_the_new_one_in_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    remote.write("tasks/a.yaml", doc("a", "2 * * * *"))
    new = remote.commit()
    assert source.sync()
    (mirror,) = state.glob("git/*/repo.git")
    shutil.rmtree(mirror)
    again = source_for(remote, state, clock, path="tasks")
    again.read_ahead(1)
    assert again.status().revision == new
    assert "the one before cannot be checked out: it stays in force" in caplog.text
    again.refresh()
    assert schedules(again) == {"default/a": "2 * * * *"}
    assert not list(state.glob("git/*/unread"))


def test_a_record_left_beside_a_revision_an_earlier_release_applied_is_not_acted_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed between a switch and its read, then rolled back: a release that does not know
    the record reads the revision and moves on to newer ones, and leaves the record as it was.
    The upgrade after it put back the revision the record named, however old (its tasks in
    force, the newer ones' gone, until a sync worked), and not the one before the revision in
    force."""
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    remote.write("tasks/a.yaml", doc("a", "2 * * * *"))
    remote.commit()
    assert source.sync()  # the process ends before a pass reads it
    (record,) = state.glob("git/*/unread")
    left = record.read_bytes()
    # The earlier release: reads the revision, and a newer one, never touching the record.
    source.refresh()
    remote.write("tasks/a.yaml", doc("a", "3 * * * *"))
    remote.write("tasks/c.yaml", doc("c", "4 * * * *"))
    newest = remote.commit()
    assert synced(source)
    record.write_bytes(left)

    again = source_for(remote, state, clock, path="tasks")  # the upgrade again
    again.read_ahead(1)
    assert again.status().revision == newest
    assert "put back in force" not in caplog.text
    again.refresh()
    assert schedules(again) == {"default/a": "3 * * * *", "default/c": "4 * * * *"}


def test_a_revision_in_force_again_before_a_pass_needs_no_read_to_clear_the_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A push and its force-push back within one pass: the revision in force again was read
    already, and a pass of file events reads nothing; the record of the revision never read
    stayed until the next full resync, and a restart before it put that one in force."""
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    good = remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    remote.write("tasks/a.yaml", _broken("a", "1 * * * *"))
    remote.commit()
    assert source.sync()  # never read
    remote.push(f"{good}:refs/heads/main", force=True)
    assert source.sync()
    source.refresh(hints=set())  # a pass of file events

    again = source_for(remote, state, clock, path="tasks")  # the restart
    again.read_ahead(1)
    assert again.status().revision == good
    assert "put back in force" not in caplog.text
