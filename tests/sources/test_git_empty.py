"""A revision that yields no task file while the revision in force has tasks is refused whole
(``gitempty``), as a revision over the checkout bounds is: ``current`` stays on the revision with
tasks, so a restart reads them still (applied, its tasks were held in memory alone, and the next
start read the empty revision: every task gone). ``--allow-empty`` applies it, and its tasks
go. A ``--git-path`` the revision does not have at all is refused whatever ``--allow-empty``
says, as a folder gone keeps its tasks whatever it says. Real git."""

from __future__ import annotations

from pathlib import Path

import pytest

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

EMPTY = (
    "--git-path 'tasks' holds no task file in it; the tasks of the revision in force stay; "
    "--allow-empty lets a revision without task files remove them"
)
GONE = "--git-path 'tasks' does not exist in it; the tasks of the revision in force stay until a"


def restarted(remote: Remote, state: Path, clock: Clock, **options: object) -> set[str]:
    """The tasks a new process reads from the revision in force, before and after its sync."""
    again = source_for(remote, state, clock, path="tasks", **options)
    again.read_ahead(1)
    again.refresh()
    before = set(schedules(again))
    again.sync()
    again.refresh()
    assert set(schedules(again)) == before
    return before


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_revision_without_task_files_is_refused_and_a_restart_keeps_the_tasks(
    remote: Remote, state: Path, clock: Clock, how: str
) -> None:
    remote.write("tasks/a.yaml", doc("a"))
    remote.write("tasks/b.yaml", doc("b"))
    good = remote.commit()
    source = source_for(remote, state, clock, path="tasks", guard_empty=True)
    assert synced(source)
    assert set(schedules(source)) == {"default/a", "default/b"}

    remote.rm("tasks")
    if how == "emptied":
        remote.write("tasks/README.md", "moved to ../jobs\n")  # the folder stays, without YAML
    else:
        remote.write("README.md", "no tasks here\n")
    empty = remote.commit()
    assert not synced(source)
    status = source.status()
    assert (status.revision, status.attempted_revision) == (good, empty)
    assert status.last_error is not None
    assert status.last_error.startswith(
        f"revision {empty[:12]} refused: {EMPTY if how == 'emptied' else GONE}"
    )
    assert (status.consecutive_failures, status.sync_failures) == (1, 1)
    assert set(schedules(source)) == {"default/a", "default/b"}
    assert source.errors() == []
    assert (source.current / "tasks/a.yaml").is_file()

    assert restarted(remote, state, clock, guard_empty=True) == {"default/a", "default/b"}

    remote.write("tasks/c.yaml", doc("c"))  # a revision with tasks is applied as any
    remote.commit()
    assert synced(source)
    assert set(schedules(source)) == {"default/c"}
    assert (source.errors(), source.status().last_error) == ([], None)


def test_with_allow_empty_a_revision_without_task_files_removes_them(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("tasks/a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks", guard_empty=False)
    assert synced(source)
    remote.rm("tasks/a.yaml")
    remote.write("tasks/README.md", "no tasks here\n")
    emptied = remote.commit()
    assert synced(source)
    assert schedules(source) == {}
    assert (source.errors(), source.status().revision) == ([], emptied)
    assert restarted(remote, state, clock) == set()


def test_with_allow_empty_a_revision_without_the_path_is_refused_still(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("tasks/a.yaml", doc("a"))
    good = remote.commit()
    source = source_for(remote, state, clock, path="tasks", guard_empty=False)
    assert synced(source)
    remote.rm("tasks")
    remote.write("README.md", "no tasks here\n")
    remote.commit()
    assert not synced(source)
    assert (set(schedules(source)), source.status().revision) == ({"default/a"}, good)
    assert restarted(remote, state, clock) == {"default/a"}


def test_a_first_revision_without_tasks_and_one_after_it_are_applied(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("README.md", "tasks come later\n")
    first = remote.commit()
    source = source_for(remote, state, clock, path="tasks", guard_empty=True)
    assert synced(source)  # no revision in force before it: applied, as before
    assert (source.status().revision, source.status().last_error) == (first, None)
    assert [str(e) for e in source.errors()] == [
        f"tasks: path does not exist (revision {first[:12]})"
    ]
    remote.write("tasks/README.md", "still none\n")
    second = remote.commit()
    assert synced(source)  # the revision in force has no task: nothing to keep
    assert (source.status().revision, source.status().last_error) == (second, None)
    assert schedules(source) == {}


def test_a_refused_revision_in_a_new_process_before_its_first_read(
    remote: Remote, state: Path, clock: Clock
) -> None:
    # A start syncs while its first pass may not have read the tree yet: the tree in force on
    # disk tells whether it has tasks.
    remote.write("tasks/a.yaml", doc("a"))
    good = remote.commit()
    assert synced(source_for(remote, state, clock, path="tasks", guard_empty=True))
    remote.rm("tasks")
    remote.write("README.md", "no tasks here\n")
    remote.commit()
    again = source_for(remote, state, clock, path="tasks", guard_empty=True)
    assert not again.sync()
    again.refresh()
    assert (set(schedules(again)), again.status().revision) == ({"default/a"}, good)
