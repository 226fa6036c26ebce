"""The directory source: what is read, last-known-good, deletions, vanished paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource


def doc(name: str, schedule: str = "* * * * *", namespace: str = "default") -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f'spec: {{schedule: "{schedule}", command: {{args: ["true"]}}}}\n'
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # Make every write visible to the (mtime, size, inode) check even within one tick.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    return path


def keys(source: DirectorySource) -> dict[str, str]:
    return {d.key: d.task.spec.schedule for d in source.definitions()}


def test_reads_yaml_recursively_skipping_hidden_and_other_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", doc("a"))
    write(tmp_path / "sub" / "deeper" / "b.yml", doc("b"))
    write(tmp_path / ".git" / "c.yaml", doc("c"))
    write(tmp_path / "..data" / "d.yaml", doc("d"))
    write(tmp_path / ".hidden.yaml", doc("e"))
    write(tmp_path / "notes.txt", doc("f"))
    source = DirectorySource([tmp_path])
    assert source.refresh() == {"default/a", "default/b"}
    assert set(keys(source)) == {"default/a", "default/b"}


def test_a_path_may_be_a_single_file(tmp_path: Path) -> None:
    file = write(tmp_path / "one.yaml", doc("one"))
    source = DirectorySource([file])
    source.refresh()
    assert set(keys(source)) == {"default/one"}


def test_only_changed_files_are_reread(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", doc("a"))
    b = write(tmp_path / "b.yaml", doc("b"))
    source = DirectorySource([tmp_path])
    source.refresh()
    assert source.refresh() == set()
    write(b, doc("b", "0 * * * *"))
    assert source.refresh() == {"default/b"}
    assert keys(source)["default/b"] == "0 * * * *"


def test_broken_file_keeps_its_last_good_tasks(tmp_path: Path) -> None:
    file = write(tmp_path / "a.yaml", doc("a") + "---\n" + doc("b"))
    source = DirectorySource([tmp_path])
    source.refresh()
    # Break one document and edit the other: the whole file keeps its last good version.
    write(file, doc("a", "*/2 * * * *") + "---\n" + doc("b", "61 * * * *"))
    source.refresh()
    assert keys(source) == {"default/a": "* * * * *", "default/b": "* * * * *"}
    (error,) = source.errors()
    # Second document, line 9; column 19 is where "61" starts inside the expression.
    assert str(error) == f"{file}:9:19: spec.schedule: minute field: 61 is out of range 0-59"
    assert all(d.error == str(error) for d in source.definitions())
    # Fixing the file applies it, and clears the error.
    write(file, doc("a", "*/2 * * * *") + "---\n" + doc("b", "1 * * * *"))
    source.refresh()
    assert keys(source) == {"default/a": "*/2 * * * *", "default/b": "1 * * * *"}
    assert source.errors() == []
    assert all(d.error is None for d in source.definitions())


@pytest.mark.parametrize("hinted", [False, True])
def test_a_file_moved_and_broken_at_once_keeps_its_tasks(tmp_path: Path, hinted: bool) -> None:
    """``git mv backup.yaml ops-backup.yaml`` and a typo in one commit: the old path defines
    nothing any more and the new one is broken, but still names the task. It keeps running on
    its last good definition, with the error, until a good definition or none names it."""
    old = write(tmp_path / "backup.yaml", doc("backup") + "---\n" + doc("other"))
    source = DirectorySource([tmp_path])
    source.refresh()
    old.unlink()
    new = write(tmp_path / "ops-backup.yaml", doc("backup", "0 25 * * *"))
    hints = {str(old.absolute()), str(new.absolute())} if hinted else None
    assert source.refresh(hints) == {"default/backup", "default/other"}
    assert keys(source) == {"default/backup": "* * * * *"}  # "other" was removed on purpose
    (error,) = source.errors()
    assert str(error).startswith(f"{new}:4:")
    assert [d.error for d in source.definitions()] == [str(error)]
    assert [d.key for d in source.definitions_of({"default/backup"})] == ["default/backup"]
    # Another edit of the broken file, still broken: still held, with the new error.
    write(new, doc("backup", "0 26 * * *"))
    assert source.refresh() == {"default/backup"}
    assert keys(source) == {"default/backup": "* * * * *"}
    assert "26 is out of range" in str(source.definitions()[0].error)
    # Fixed: the new definition, no error.
    write(new, doc("backup", "0 2 * * *"))
    assert source.refresh() == {"default/backup"}
    assert keys(source) == {"default/backup": "0 2 * * *"}
    assert [d.error for d in source.definitions()] == [None]


def test_the_removal_and_the_broken_file_may_come_in_two_refreshes(tmp_path: Path) -> None:
    """A watcher may hand over the old file's removal in one batch and the new, broken file in
    the next (git removes first): within a moment the broken document still claims the task.
    Later, a typo naming a task removed on purpose brings nothing back."""
    now = [100.0]
    old = write(tmp_path / "backup.yaml", doc("backup"))
    write(tmp_path / "other.yaml", doc("other"))
    source = DirectorySource([tmp_path], clock=lambda: now[0])
    source.refresh()
    old.unlink()
    assert source.refresh({str(old.absolute())}) == {"default/backup"}
    assert set(keys(source)) == {"default/other"}  # removed, for now
    now[0] += 0.5
    new = write(tmp_path / "ops-backup.yaml", doc("backup", "0 25 * * *"))
    assert source.refresh({str(new.absolute())}) == {"default/backup"}
    assert keys(source) == {"default/backup": "* * * * *", "default/other": "* * * * *"}
    # A task removed on purpose stays removed: a broken file naming it later holds nothing.
    write(new, doc("backup"))
    source.refresh()
    new.unlink()
    source.refresh()
    now[0] += 3
    late = write(tmp_path / "late.yaml", doc("backup", "0 25 * * *"))
    assert source.refresh({str(late.absolute())}) == {"default/backup"}
    assert set(keys(source)) == {"default/other"}


def test_a_task_held_by_a_broken_document_goes_with_that_document(tmp_path: Path) -> None:
    old = write(tmp_path / "a.yaml", doc("a"))
    source = DirectorySource([tmp_path])
    source.refresh()
    old.unlink()
    new = write(tmp_path / "b.yaml", doc("a", "61 * * * *"))
    source.refresh()
    assert keys(source) == {"default/a": "* * * * *"}
    new.unlink()
    assert source.refresh() == {"default/a"}
    assert keys(source) == {}
    assert source.errors() == []
    # A broken document naming a task no file defined before holds nothing.
    write(tmp_path / "c.yaml", doc("c", "61 * * * *"))
    source.refresh()
    assert keys(source) == {}


@pytest.mark.parametrize("target", ["missing.yaml", "../outside/missing.yaml", "/opt/none.yaml"])
def test_a_file_replaced_by_a_link_to_nothing_keeps_its_tasks(tmp_path: Path, target: str) -> None:
    """A typo in a link's target, or a file it names that is not there (on this host, in this
    commit), is an error of that file: it is no deletion."""
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a"))
    source = DirectorySource([root])
    source.refresh()
    a.unlink()
    a.symlink_to(target)
    source.refresh()
    assert keys(source) == {"default/a": "* * * * *"}
    (error,) = source.errors()
    assert error.location.path == str(a)
    inside = not target.startswith(("/", ".."))
    assert error.message == (
        "a symbolic link to nothing: not read"
        if inside
        else f"a symbolic link that leads outside the folder {root}: not read"
    )
    # Once what it names is there, it is read.
    if inside:
        write(root / target, doc("a", "0 * * * *"))
        source.refresh()
        assert keys(source) == {"default/a": "0 * * * *"}
        assert source.errors() == []
    # And a link removed is a file deleted.
    a.unlink()
    source.refresh()
    assert keys(source) == ({"default/a": "0 * * * *"} if inside else {})


def test_a_file_broken_from_the_start_defines_nothing(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "spec: [")
    source = DirectorySource([tmp_path])
    source.refresh()
    assert keys(source) == {}
    assert len(source.errors()) == 1


def test_deleting_a_file_removes_its_tasks(tmp_path: Path) -> None:
    file = write(tmp_path / "a.yaml", doc("a"))
    source = DirectorySource([tmp_path])
    source.refresh()
    file.unlink()
    assert source.refresh() == {"default/a"}
    assert keys(source) == {}


def test_hints_reread_only_the_named_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", doc("a"))
    b = write(tmp_path / "b.yaml", doc("b"))
    source = DirectorySource([tmp_path])
    source.refresh()
    write(a, doc("a", "0 * * * *"))
    write(b, doc("b", "0 * * * *"))
    assert source.refresh({str(a.absolute()), str(tmp_path / "unrelated.txt")}) == {"default/a"}
    assert keys(source) == {"default/a": "0 * * * *", "default/b": "* * * * *"}


def test_a_hint_from_inside_a_linked_folder_is_not_read(tmp_path: Path) -> None:
    """The walk does not enter a symlinked folder; the watcher follows it and reports an edit
    of ``real/a.yaml`` as ``linked/a.yaml`` too. That path must not become a second file (a
    conflict of every task in it) that a full refresh never forgets."""
    a = write(tmp_path / "real" / "a.yaml", doc("a"))
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    source = DirectorySource([tmp_path])
    source.refresh()
    write(a, doc("a", "0 * * * *"))
    hints = {str(a.absolute()), str((tmp_path / "linked" / "a.yaml").absolute())}
    assert source.refresh(hints) == {"default/a"}
    assert keys(source) == {"default/a": "0 * * * *"}
    assert [d.location.path for d in source.definitions()] == [str(a)]
    assert set(source.files) == {a}


@pytest.mark.parametrize("target", ["/etc", "../elsewhere", "missing"])
def test_a_folder_replaced_by_a_link_elsewhere_keeps_its_tasks(tmp_path: Path, target: str) -> None:
    """A link to a folder is not entered; one that leads out of the path, or to nothing, where
    a folder of task files was, holds their tasks with an error, as an unlisted folder does."""
    (tmp_path / "elsewhere").mkdir()
    root = tmp_path / "tasks"
    write(root / "a.yaml", doc("a"))
    write(root / "team" / "b.yaml", doc("b"))
    source = DirectorySource([root])
    source.refresh()
    (root / "team" / "b.yaml").unlink()
    (root / "team").rmdir()
    (root / "team").symlink_to(target)
    source.refresh()
    assert set(keys(source)) == {"default/a", "default/b"}
    (error,) = source.errors()
    assert error.location.path == str(root / "team")
    assert error.message.startswith("a symbolic link to a folder outside this path, or to nothing")
    # The link removed: the folder is gone, and so are its tasks.
    (root / "team").unlink()
    source.refresh()
    assert set(keys(source)) == {"default/a"}
    assert source.errors() == []


def test_hints_on_relative_roots_keep_the_users_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "tasks" / "a.yaml", doc("a"))
    source = DirectorySource([Path("tasks")])
    source.refresh()
    write(tmp_path / "tasks" / "a.yaml", doc("a", "0 2 * * *"))
    source.refresh({str(tmp_path / "tasks" / "a.yaml")})
    (definition,) = source.definitions()
    assert definition.location.path == "tasks/a.yaml"
    assert definition.task.spec.schedule == "0 2 * * *"


def test_a_vanished_path_keeps_its_tasks_and_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    write(root / "a.yaml", doc("a"))
    source = DirectorySource([root])
    source.refresh()
    (root / "a.yaml").rename(tmp_path / "moved.yaml")
    root.rmdir()
    source.refresh()
    assert set(keys(source)) == {"default/a"}
    assert [e.message for e in source.errors()] == [
        "no task file here any more: keeping its task: path does not exist; it stays until it "
        "is back"
    ]
    root.mkdir()
    source.refresh()
    assert keys(source) == {}
    assert source.errors() == []


def test_a_recursive_alias_keeps_the_files_tasks_and_the_others_work(tmp_path: Path) -> None:
    broken = write(tmp_path / "a.yaml", doc("a"))
    other = write(tmp_path / "b.yaml", doc("b"))
    source = DirectorySource([tmp_path])
    source.refresh()
    write(broken, "x: &loop [*loop]\n")
    write(other, doc("b", "0 * * * *"))
    source.refresh()
    assert keys(source) == {"default/a": "* * * * *", "default/b": "0 * * * *"}
    (error,) = source.errors()
    assert "recursive YAML alias" in str(error)
