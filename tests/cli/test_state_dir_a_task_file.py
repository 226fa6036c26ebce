"""``--state-dir`` naming a task file given as PATH: the file is no folder, so the refusal says
that, as for any other file; it said the state dir was "inside t.yaml, a folder crontask reads
task files from", which sent the reader looking for a folder that is not there."""

from __future__ import annotations

from pathlib import Path

from reconciler.cli.state_place import read_as_tasks
from tests.helpers import NEVER_DUE, crontask_cli


def test_a_task_file_as_state_dir_is_refused_as_no_folder(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(NEVER_DUE)
    done = crontask_cli("run", "t.yaml", "--state-dir", "t.yaml", "--listen", "off", cwd=tmp_path)
    assert done.returncode != 0
    assert "is inside" not in done.stderr
    assert "refusing state directory t.yaml: it is not a directory" in done.stderr


def test_a_file_path_reads_no_state_dir(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(NEVER_DUE)
    assert read_as_tasks([str(tmp_path / "t.yaml")], tmp_path / "t.yaml") is None
    # A folder given still reads a state dir that is itself.
    assert read_as_tasks([str(tmp_path)], tmp_path) == str(tmp_path)
