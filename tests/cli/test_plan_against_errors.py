"""`crontask plan --against` with a broken file on the side in force: what that file defines
there is not known (a running crontask keeps its last good tasks), so the plan says so rather
than show its tasks as added without a word."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_inspect import crontask, doc


def test_errors_of_the_definitions_in_force_are_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "a.yaml").write_text(doc("a", "@daily", extra="  suspend: maybe\n"))
    (new / "a.yaml").write_text(doc("a", "@daily"))
    # The new definitions are valid: the exit status is theirs.
    assert crontask("plan", str(new), "--against", str(old)) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"+ default/a  ({new / 'a.yaml'}:1:1)",
        f"? {old / 'a.yaml'}:8:3: spec.suspend: true or false, not the string 'maybe' "
        "(--against: what this file defines in force is not known; a running crontask keeps "
        "its last good tasks)",
        "Plan: 1 to add, 0 to change, 0 to remove, 0 unchanged.",
    ]


def test_valid_definitions_in_force_add_no_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "a.yaml").write_text(doc("a", "@daily"))
    (new / "a.yaml").write_text(doc("a", "@daily"))
    assert crontask("plan", str(new), "--against", str(old)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Plan: 0 to add, 0 to change, 0 to remove, 1 unchanged."
    ]
