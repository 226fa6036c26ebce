"""Links that cannot be followed: ``/proc/1/cwd`` and ``/proc/<pid>/root`` of a process this one
may not trace. ``readlink()`` refuses them (EACCES), and ``os.path.realpath`` on Python 3.11 and
3.12 raises that error (3.13 treats the link as a plain name). Such a link in a folder or a
commit is an error of its own path, as any link that leads out is: a folder not entered, a file
not read; it never fails the refresh, and a task whose file became one keeps its last good
definition. Real files and real git, as in test_git; skipped where this process may read the
link (a root that may trace pid 1), as the case cannot be made there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced


def unfollowable() -> str:
    """A link this process may not read, or skip the test."""
    for candidate in ("/proc/1/cwd", "/proc/1/root"):
        try:
            os.readlink(candidate)
        except PermissionError:
            return candidate
        except OSError:
            continue
    pytest.skip("this process may read the links of pid 1 (/proc/1/cwd): no link to refuse")


NOT_ENTERED = (
    "a symbolic link to a folder outside this path, or to nothing: not entered; the tasks of "
    "files once here are kept"
)


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def test_a_folder_link_that_cannot_be_followed_is_a_folder_not_entered(tmp_path: Path) -> None:
    target = unfollowable()
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text(doc("a"))
    os.symlink(target, folder / "evil")
    source = DirectorySource([folder])
    assert source.refresh() == {"default/a"}
    assert [str(e) for e in source.errors()] == [f"{folder / 'evil'}: {NOT_ENTERED}"]


def test_a_task_file_replaced_by_such_a_link_keeps_its_task(tmp_path: Path) -> None:
    target = unfollowable()
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text(doc("a", "1 * * * *"))
    source = DirectorySource([folder])
    source.refresh()
    (folder / "a.yaml").unlink()
    os.symlink(target, folder / "a.yaml")
    source.refresh()
    assert [d.task.spec.schedule for d in source.definitions()] == ["1 * * * *"]
    assert [str(e) for e in source.errors()] == [
        f"{folder / 'a.yaml'}:1:1: cannot read: Permission denied"
    ]


def test_such_a_link_given_as_the_path_is_an_error_of_that_path(tmp_path: Path) -> None:
    link = tmp_path / "tasks"
    os.symlink(unfollowable(), link)
    source = DirectorySource([link])
    assert source.refresh() == set()
    assert [str(e) for e in source.errors()] == [
        f"{link}: a symbolic link on this path cannot be followed: not read"
    ]


@pytest.mark.parametrize("name", ["evil", "evil.yaml", "a.yaml"])
def test_a_commit_with_such_a_link_fails_no_refresh_and_the_next_commit_applies(
    name: str, tmp_path: Path
) -> None:
    """The link committed (as a folder, as a new file, in place of a task file): the refresh
    says it and keeps the tasks, and the next commit applies; a restart whose state directory
    holds such a revision reads it (ahead too, as ``crontask run`` does) before any fetch, and
    applies the commit that fixes it."""
    target = unfollowable()
    remote, clock, state = Remote(tmp_path), Clock(), tmp_path / "state"
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    if name == "a.yaml":
        (remote.work / "tasks" / "a.yaml").unlink()
    os.symlink(target, remote.work / "tasks" / name)
    bad = remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *"}
    said = [str(e) for e in source.errors()]
    assert len(said) == 1
    assert said[0].startswith(f"tasks/{name}:")
    assert said[0].endswith(f"(revision {bad[:12]})")

    remote.write("tasks/b.yaml", doc("b", "2 * * * *"))
    still_bad = remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "2 * * * *"}

    restarted = source_for(remote, state, clock, path="tasks")
    assert restarted.status().applied_revision == still_bad
    assert restarted.read_ahead(2) == 0  # too few files to fork for: it only looked
    restarted.refresh()
    # A restart has no last good definition of a file that is a link in its first revision.
    kept = {"default/b"} if name == "a.yaml" else {"default/a", "default/b"}
    assert set(schedules(restarted)) == kept
    assert len(restarted.errors()) == 1

    remote.rm(f"tasks/{name}")
    remote.write("tasks/a.yaml", doc("a", "3 * * * *"))
    remote.commit()
    assert synced(restarted)
    assert restarted.errors() == []
    assert schedules(restarted) == {"default/a": "3 * * * *", "default/b": "2 * * * *"}
