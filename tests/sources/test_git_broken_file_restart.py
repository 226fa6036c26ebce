"""A file broken in the git revision in force keeps its tasks on their last good definitions
across a restart, as a watched folder's does (``keptfiles``): the new process reads the same
revision, finds only the broken text, and took the tasks away until the file was fixed. Real
git."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def test_a_file_broken_in_the_revision_in_force_keeps_its_tasks_after_a_restart(
    tmp_path: Path,
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.write("tasks/b.yaml", doc("b", "2 * * * *"))
    good = remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    remote.write("tasks/a.yaml", doc("a", "1 * * * *").replace("{name: a}", "{name: a"))
    broken = remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "2 * * * *"}

    again = source_for(remote, state, clock, path="tasks")  # a restart
    again.read_ahead(1)
    again.refresh()
    assert again.status().revision == broken
    assert schedules(again) == {"default/a": "1 * * * *", "default/b": "2 * * * *"}
    (kept,) = [d for d in again.definitions() if d.key == "default/a"]
    assert kept.location.revision == good
    assert [e.location.path for e in again.errors()] == ["tasks/a.yaml"]

    remote.write("tasks/a.yaml", doc("a", "3 * * * *"))  # fixed: the kept copy goes
    remote.commit()
    assert synced(again)
    assert schedules(again) == {"default/a": "3 * * * *", "default/b": "2 * * * *"}
    assert not any((state / "git").rglob("kept-files/*"))


def test_a_file_broken_then_deleted_leaves_nothing_kept(tmp_path: Path) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.write("tasks/b.yaml", doc("b", "2 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    remote.write("tasks/a.yaml", "kind: CronTask\nmetadata: {name: a\n")
    remote.commit()
    assert synced(source)
    remote.rm("tasks/a.yaml")
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/b": "2 * * * *"}
    again = source_for(remote, state, clock, path="tasks")
    again.read_ahead(1)
    again.refresh()
    assert schedules(again) == {"default/b": "2 * * * *"}
    assert not any((state / "git").rglob("kept-files/*"))
