"""`crontask plan --against` keeps what `run` keeps when files go where it cannot tell they
went: a path that holds no task file any more (unless --allow-empty), and a folder turned into
a link to a folder elsewhere, which is not entered. It said "to remove", sometimes with exit
status 0, while `run` kept those tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_inspect import crontask, doc


def folders(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    for tree in (old, new):
        for name in ("x", "y"):
            (tree / name).mkdir(parents=True)
        (tree / "x" / "a.yaml").write_text(doc("a", "@daily"))
    (old / "y" / "b.yaml").write_text(doc("b", "@daily"))
    return old, new


def test_a_path_emptied_keeps_its_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = folders(tmp_path)  # new/y holds nothing
    argv = ["plan", str(new / "x"), str(new / "y"), "--against", str(old / "x"), str(old / "y")]
    assert crontask(*argv) == 1
    assert capsys.readouterr().out.splitlines() == [
        "  default/b  (kept: its path holds no task file now; --allow-empty removes it)",
        f"! {new / 'y'}: no task file here any more: keeping its task (an unmounted volume or "
        "a folder moved away?); --allow-empty lets an empty folder remove them",
        "Plan: 0 to add, 0 to change, 0 to remove, 2 unchanged.",
    ]
    assert crontask(*argv, "--allow-empty") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"- default/b  ({old / 'y' / 'b.yaml'}:1:1)",
        "Plan: 0 to add, 0 to change, 1 to remove, 1 unchanged.",
    ]


def test_a_folder_that_keeps_a_file_removes_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = folders(tmp_path)
    (new / "y" / "c.yaml").write_text(doc("c", "@daily"))
    argv = ["plan", str(new / "x"), str(new / "y"), "--against", str(old / "x"), str(old / "y")]
    assert crontask(*argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"+ default/c  ({new / 'y' / 'c.yaml'}:1:1)",
        f"- default/b  ({old / 'y' / 'b.yaml'}:1:1)",
        "Plan: 1 to add, 0 to change, 1 to remove, 1 unchanged.",
    ]


def test_a_folder_turned_into_a_link_elsewhere_keeps_its_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    (old / "team").mkdir(parents=True)
    new.mkdir()
    (tmp_path / "elsewhere").mkdir()
    for tree in (old, new):
        (tree / "a.yaml").write_text(doc("a", "@daily"))
    (old / "team" / "b.yaml").write_text(doc("b", "@daily"))
    (tmp_path / "elsewhere" / "b.yaml").write_text(doc("b", "@hourly"))
    (new / "team").symlink_to("../elsewhere")
    assert crontask("plan", str(new), "--against", str(old)) == 1
    assert capsys.readouterr().out.splitlines() == [
        "  default/b  (kept as it is: where it was defined is not read)",
        f"! {new / 'team'}: a symbolic link to a folder outside this path, or to nothing: not "
        "entered; the tasks of files once here are kept",
        "Plan: 0 to add, 0 to change, 0 to remove, 2 unchanged.",
    ]


def test_a_folder_turned_into_a_link_to_a_file_keeps_its_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As `run` keeps them: the new source has read nothing before, so plan looks for the link
    # where the old files' folder was. It said "1 to remove", exit status 0.
    old, new = tmp_path / "old", tmp_path / "new"
    (old / "team").mkdir(parents=True)
    new.mkdir()
    for tree in (old, new):
        (tree / "keep.yaml").write_text(doc("keep", "@daily"))
        (tree / "notes.txt").write_text("notes\n")
    (old / "team" / "a.yaml").write_text(doc("a", "@daily"))
    (new / "team").symlink_to("notes.txt")
    assert crontask("plan", str(new), "--against", str(old)) == 1
    assert capsys.readouterr().out.splitlines() == [
        "  default/a  (kept as it is: where it was defined is not read)",
        f"! {new / 'team'}: a symbolic link to a file, not a folder: not entered; the tasks of "
        "files once here are kept",
        "Plan: 0 to add, 0 to change, 0 to remove, 2 unchanged.",
    ]
    (new / "team").unlink()  # a folder gone, not a link: its tasks go, and nothing is said
    assert crontask("plan", str(new), "--against", str(old)) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"- default/a  ({old / 'team' / 'a.yaml'}:1:1)",
        "Plan: 0 to add, 0 to change, 1 to remove, 1 unchanged.",
    ]


def test_a_folder_replaced_by_a_file_keeps_the_tasks_of_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for tree in (old, new):
        (tree / "other").mkdir(parents=True)
        (tree / "other" / "o.yaml").write_text(doc("o", "@daily"))
    (old / "tasks").mkdir()
    (old / "tasks" / "a.yaml").write_text(doc("a", "@daily"))
    (new / "tasks").write_text(doc("t", "@daily"))  # a file named as the folder was
    roots = [str(new / "tasks"), str(new / "other"), "--against"]
    assert crontask("plan", *roots, str(old / "tasks"), str(old / "other")) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        f"+ default/t  ({new / 'tasks'}:1:1)",
        "  default/a  (kept: its path holds no task file now; --allow-empty removes it)",
    ]
    assert out[-1] == "Plan: 1 to add, 0 to change, 0 to remove, 2 unchanged."
