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
