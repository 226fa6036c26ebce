"""A commit that turns the ``--git-path`` folder into a file: the folder's files are gone, and
the directory source holds their tasks (``rootstate.yields_nothing``), in memory alone; the
next start read the file in force, and those tasks were gone, silently. Such a revision is
refused whole, as one whose folder holds no task file (``gitempty``), unless
``--allow-empty``; a ``--git-path`` that was a file all along changes as any file. Real git."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.mark.parametrize("text", ["oops: [\n", "", doc("b", "2 * * * *")])
def test_a_folder_turned_into_a_file_is_refused_and_its_tasks_stay_after_a_restart(
    tmp_path: Path, text: str
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    good = remote.commit()
    source = source_for(remote, state, clock, path="tasks", guard_empty=True)
    assert synced(source)
    remote.rm("tasks")
    remote.write("tasks", text)
    refused = remote.commit()
    assert not synced(source)
    status = source.status()
    assert (status.revision, status.attempted_revision) == (good, refused)
    assert status.last_error is not None
    assert f"revision {refused[:12]} refused: --git-path 'tasks' is a file in it" in (
        status.last_error
    )
    assert schedules(source) == {"default/a": "1 * * * *"}
    again = source_for(remote, state, clock, path="tasks", guard_empty=True)  # a restart
    again.read_ahead(1)
    again.refresh()
    assert schedules(again) == {"default/a": "1 * * * *"}


def test_allow_empty_applies_a_folder_turned_into_a_file(tmp_path: Path) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    remote.rm("tasks")
    remote.write("tasks", doc("b", "2 * * * *"))
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/b": "2 * * * *"}


def test_a_path_that_is_a_file_changes_as_any_file(tmp_path: Path) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks.yaml", guard_empty=True)
    assert synced(source)
    remote.write("tasks.yaml", doc("b", "2 * * * *"))
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/b": "2 * * * *"}
