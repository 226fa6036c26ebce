"""A revision that yields no task file keeps the tasks the revision before defined, as a folder
that suddenly holds none does: an emptied ``--git-path`` must not remove every task, whatever
other sources hold. ``--allow-empty`` lets it. (A ``--git-path`` the revision does not have at
all is an error of its own, and keeps them too.)"""

from __future__ import annotations

from pathlib import Path

from tests.sources.test_git import (
    Clock,
    Remote,
    clock,
    doc,
    isolated_git,
    remote,
    schedules,
    source_for,
    state,
    synced,
)

__all__ = ["clock", "isolated_git", "remote", "state"]  # test_git's fixtures, used by name


def test_a_revision_without_task_files_keeps_the_tasks_and_says_so(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("tasks/a.yaml", doc("a"))
    remote.write("tasks/b.yaml", doc("b"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks", guard_empty=True)
    assert synced(source)
    assert set(schedules(source)) == {"default/a", "default/b"}

    remote.rm("tasks/a.yaml")
    remote.rm("tasks/b.yaml")
    remote.write("tasks/README.md", "moved to ../jobs\n")  # the folder stays, without YAML
    emptied = remote.commit()
    assert synced(source)
    assert set(schedules(source)) == {"default/a", "default/b"}
    (error,) = source.errors()
    assert error.message == (
        "no task file here any more: keeping the 2 tasks it defined in this revision; "
        "--allow-empty lets a revision without them remove them"
    )
    assert error.location.revision == emptied

    remote.write("tasks/c.yaml", doc("c"))
    remote.commit()
    assert synced(source)
    assert set(schedules(source)) == {"default/c"}
    assert source.errors() == []


def test_with_allow_empty_a_revision_without_task_files_removes_them(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, state, clock, guard_empty=False)
    assert synced(source)
    remote.rm("a.yaml")
    remote.write("README.md", "no tasks here\n")
    remote.commit()
    assert synced(source)
    assert schedules(source) == {}
    assert source.errors() == []
