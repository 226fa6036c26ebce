"""A file of many tasks that breaks costs one copy of its definitions, not one per task: the
definitions a change touched (``definitions_of``, each of the file's keys) were read file by
file for each key, and each read of a broken file copies every definition it keeps (with the
file's error: ``FileState.in_force``). 10 files of 1 000 tasks broken at once held crontask at
100 % CPU for 2 minutes before the error was logged (the status page's list took 1 s instead of
0.1), and one file of 10 000 would take half an hour. Counted in copies, not in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core.desired import Definition
from reconciler.sources import filestate
from reconciler.sources.files import DirectorySource
from tests.controller.test_reconcile import doc

TASKS = 300


class Reads:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    counted = Reads()
    real = filestate.FileState.in_force

    def in_force(self: filestate.FileState) -> tuple[Definition, ...]:
        counted.count += 1
        return real(self)

    monkeypatch.setattr(filestate.FileState, "in_force", in_force)
    return counted


def test_a_broken_file_of_many_tasks_is_read_once_per_change(tmp_path: Path, reads: Reads) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    many = tasks / "many.yaml"
    many.write_text("---\n".join(doc(f"t{i}") for i in range(TASKS)))
    (tasks / "other.yaml").write_text(doc("other"))
    source = DirectorySource([tasks])
    source.refresh(None)
    many.write_text(many.read_text() + "broken: [\n")
    changed = source.refresh({str(many.absolute())})
    assert len(changed) == TASKS  # each keeps its last good definition, with the error
    reads.count = 0
    found = source.definitions_of(changed)
    assert reads.count == 1
    assert sorted(d.key for d in found) == sorted(changed)
    assert all(d.error is not None and "YAML syntax error" in d.error for d in found)
    assert [d.key for d in source.definitions_of({"default/other"})] == ["default/other"]
