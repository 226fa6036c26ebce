"""A folder of ``--git-path`` that a commit turns into a submodule, a link out of the repository
or a link to nothing is not read, and the tasks of the files once in it are kept: across a
restart too (``keptfiles``). The new process read the same revision, listed no file there, and
the tasks were gone: for the submodule without a word, for the links under an error that still
said they were kept. Real git, and a restart as a new source over the same state directory."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.sources.git import GitSource
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced
from tests.sources.test_git_submodules import to_submodule

BOTH = {"default/a": "1 * * * *", "default/b": "2 * * * *"}


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def _linked(target: str) -> Callable[[Remote], str]:
    def commit(remote: Remote) -> str:
        shutil.rmtree(remote.work / "tasks/team")
        (remote.work / "tasks/team").symlink_to(target)
        return remote.commit()

    return commit


TURNED = {
    "submodule": lambda remote: to_submodule(remote, "tasks/team"),
    "link out of the repository": _linked("/etc"),
    "link to nothing": _linked("nowhere"),
}


def restarted(remote: Remote, state: Path, clock: Clock) -> GitSource:
    source = source_for(remote, state, clock, path="tasks")
    source.read_ahead(1)
    source.refresh()
    return source


@pytest.mark.parametrize("turned", TURNED)
def test_a_folder_not_read_keeps_its_tasks_after_a_restart(tmp_path: Path, turned: str) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/team/a.yaml", doc("a", "1 * * * *"))
    remote.write("tasks/b.yaml", doc("b", "2 * * * *"))
    good = remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    sha = TURNED[turned](remote)
    assert synced(source)
    assert schedules(source) == BOTH
    said = [str(e) for e in source.errors()]

    again = restarted(remote, state, clock)
    assert again.status().revision == sha
    assert schedules(again) == BOTH
    (kept,) = [d for d in again.definitions() if d.key == "default/a"]
    assert (kept.location.path, kept.location.revision) == ("tasks/team/a.yaml", good)
    assert [str(e) for e in again.errors()] == said  # "the tasks of files once here are kept"

    # The folder back: its file read again, and nothing kept any more.
    remote.rm("tasks/team")
    remote.write("tasks/team/a.yaml", doc("a", "3 * * * *"))
    remote.commit()
    assert synced(again)
    assert schedules(again) == {"default/a": "3 * * * *", "default/b": "2 * * * *"}
    assert again.errors() == []
    assert not any((state / "git").rglob("kept-files/*"))


def test_a_folder_back_without_the_file_lets_its_tasks_go_after_a_restart(
    tmp_path: Path,
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("tasks/team/a.yaml", doc("a", "1 * * * *"))
    remote.write("tasks/b.yaml", doc("b", "2 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    TURNED["link to nothing"](remote)
    assert synced(source)

    remote.rm("tasks/team")
    remote.write("tasks/team/other.txt", "not a task\n")
    remote.commit()
    assert synced(source)  # the file is gone now, for good: so are its tasks, and its copy
    assert schedules(source) == {"default/b": "2 * * * *"}
    assert not any((state / "git").rglob("kept-files/*"))
    assert schedules(restarted(remote, state, clock)) == {"default/b": "2 * * * *"}
