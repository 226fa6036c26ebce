"""A tasks folder whose path is not UTF-8 is refused at once, by every command that reads task
files. ``crontask run`` took it: every file under it was "file name is not UTF-8: not read",
so it ran no task, and its file watch failed again and again for as long as it ran ("Unable
to decode path"). Real processes, a real folder named with a byte that is no UTF-8."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: t}
spec: {schedule: "@hourly", command: {args: ["true"]}}
"""


@pytest.mark.parametrize(
    "command",
    [["run", "--listen", "off"], ["validate"], ["plan"]],
)
@pytest.mark.parametrize("where", ["folder", "parent"])
def test_a_path_that_is_not_utf8_is_refused(tmp_path: Path, command: list[str], where: str) -> None:
    odd = os.fsencode(tmp_path) + b"/t\xff"
    folder = odd if where == "folder" else odd + b"/tasks"
    os.makedirs(folder)
    with open(folder + b"/t.yaml", "w") as file:
        file.write(TASK)
    given = folder if where == "folder" else b"tasks"  # relative, under the odd parent
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *command, given, *against(command)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=30,
        cwd=tmp_path if where == "folder" else odd,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "not read: the path is not UTF-8 (rename it)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".crontask").exists()  # no state directory made
    assert not os.path.exists(odd + b"/.crontask")


def against(command: list[str]) -> list[str]:
    return ["--against", os.devnull] if command == ["plan"] else []
