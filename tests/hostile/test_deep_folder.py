"""The deep-folder case of the corpus (``corpus.deep_folder``) against ``crontask validate``,
as a real subprocess: one line naming the folder, exit status 1, no traceback, the good task
next to it still read, in bounded time."""

from __future__ import annotations

from pathlib import Path

from reconciler.sources.gitrepo import remove_tree
from tests.hostile.corpus import deep_folder
from tests.hostile.test_validate import GOOD, SECONDS, validate


def test_a_folder_nested_too_deep_is_one_error_and_the_rest_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    case = deep_folder(folder, GOOD)
    try:
        run = validate([str(folder)], tmp_path)
    finally:
        remove_tree(folder)

    assert run.code == 1, run.err
    assert "Traceback" not in run.err
    assert run.out.splitlines() == [case.expected]
    assert run.out.startswith(f"{case.target}:")
    assert len(run.out) < 400
    assert ", 1 task)" in run.err  # good.yaml is read as ever
    assert run.cpu_seconds < SECONDS
