"""``crontask plan --against`` keeps what ``run`` keeps adrift (``sources.adrift``): a task
moved to another file and broken in the same change (``git mv`` and a typo in one commit)
keeps its last good definition while a broken document of the new files still names it. The
plan printed it as removed ("1 to remove") while ``run`` kept it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_inspect import crontask, doc

BROKEN = doc("keep-me", "@every 30x")  # names default/keep-me, and does not validate


def folders(tmp_path: Path, old_a: str) -> tuple[Path, Path]:
    """``old`` with ``a.yaml`` (``old_a``) and ``b.yaml``; ``new`` with ``b.yaml`` and the
    broken ``c.yaml`` that a.yaml was moved to."""
    old, new = tmp_path / "old", tmp_path / "new"
    for tree in (old, new):
        tree.mkdir()
        (tree / "b.yaml").write_text(doc("other", "@daily"))
    (old / "a.yaml").write_text(old_a)
    (new / "c.yaml").write_text(BROKEN)
    return old, new


def test_a_task_moved_and_broken_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = folders(tmp_path, doc("keep-me", "@daily"))
    assert crontask("plan", str(new), "--against", str(old)) == 1
    assert capsys.readouterr().out.splitlines() == [
        "  default/keep-me  (kept as it is: its new definition has errors)",
        f"! {new / 'c.yaml'}:6:21: spec.schedule: @every: unknown unit 'x' in '30x'; use h, m "
        "and s (e.g. 30s, 5m, 1h30m)",
        "Plan: 0 to add, 0 to change, 0 to remove, 2 unchanged.",
    ]


def test_only_the_tasks_a_broken_document_names_are_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rule is per task: another task of the file that went, which no document names
    now, is removed, as ``run`` removes it."""
    old, new = folders(tmp_path, doc("keep-me", "@daily") + "---\n" + doc("mate", "@daily"))
    assert crontask("plan", str(new), "--against", str(old)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"- default/mate  ({old / 'a.yaml'}:11:1)",
        "  default/keep-me  (kept as it is: its new definition has errors)",
    ]
    assert lines[-1] == "Plan: 0 to add, 0 to change, 1 to remove, 2 unchanged."


def test_a_task_kept_adrift_needs_room_under_max_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run`` keeps a task for a broken document only while the source has room for it.
    The plan reads the new files as a start does (``d.yaml`` takes its place), so the source
    is full and the task goes; a running crontask that reads the change in one pass may
    instead refuse ``d.yaml`` and keep the task (README: near the bound, plan "may refuse
    another file than a running crontask")."""
    old, new = folders(tmp_path, doc("keep-me", "@daily"))
    argv = ["plan", str(new), "--against", str(old), "--max-tasks", "2"]
    assert crontask(*argv) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Plan: 0 to add, 0 to change, 0 to remove, 2 unchanged."
    )
    (new / "d.yaml").write_text(doc("new", "@daily"))  # the source is full: no room
    assert crontask(*argv) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"+ default/new  ({new / 'd.yaml'}:1:1)",
        f"- default/keep-me  ({old / 'a.yaml'}:1:1)",
    ]
    assert lines[-1] == "Plan: 1 to add, 0 to change, 1 to remove, 1 unchanged."


def test_a_good_definition_elsewhere_wins_over_the_broken_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = folders(tmp_path, doc("keep-me", "@daily"))
    (new / "d.yaml").write_text(doc("keep-me", "@hourly"))
    assert crontask("plan", str(new), "--against", str(old)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        f"~ default/keep-me  ({new / 'd.yaml'}:1:1)",
        "    ~ spec.schedule: '@daily' -> '@hourly'",
        f"! {new / 'c.yaml'}:6:21: spec.schedule: @every: unknown unit 'x' in '30x'; use h, m "
        "and s (e.g. 30s, 5m, 1h30m)",
    ]
