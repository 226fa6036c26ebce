"""`crontask validate` warns of a schedule a Kubernetes CronJob reads to other days, at the
task's place, and still passes: read in this process and on worker processes alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.limits import PARALLEL_MIN_FILES

TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {{name: {name}}}\n"
    'spec: {{schedule: "{schedule}", command: {{args: ["true"]}}}}\n'
)


def validate(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("files", [2, PARALLEL_MIN_FILES])  # read here; on workers with -j2
def test_the_warning_names_the_place_and_validation_passes(tmp_path: Path, files: int) -> None:
    for i in range(files - 1):
        (tmp_path / f"t{i:04d}.yaml").write_text(TASK.format(name=f"t{i}", schedule="0 9 * * 1-5"))
    (tmp_path / "weekly.yaml").write_text(
        "# every other weekday\n" + TASK.format(name="weekly", schedule="0 9 * * 1/2")
    )
    done = validate("-j2", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{tmp_path / 'weekly.yaml'}:2:1: warning: default/weekly: schedule '0 9 * * 1/2': "
        "day-of-week '1/2' runs to Sunday here (Monday, Wednesday, Friday, Sunday) and to "
        "Saturday in a Kubernetes CronJob (Monday, Wednesday, Friday): write '1-6/2,0' for these "
        "days or '1-6/2' for the CronJob's, which both read alike",
        f"ok: {files} files, {files} tasks, 1 warning",
    ]


def test_warnings_come_after_the_problems_and_do_not_count_as_one(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TASK.format(name="a", schedule="0 9 * * 1/3"))
    (tmp_path / "b.yaml").write_text(TASK.format(name="b", schedule="0 9 * * 99"))
    done = validate(str(tmp_path))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'b.yaml'}:4:")
    assert lines[1].startswith(f"{tmp_path / 'a.yaml'}:1:1: warning: default/a: ")
    assert done.stderr == "1 problem (2 files, 1 task, 1 warning)\n"
