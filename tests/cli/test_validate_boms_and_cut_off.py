"""``crontask validate`` on two files joined, the second saved with a byte order mark, reads
both tasks; on a file of more problems than it reports, its summary counts the problems shown
and says there are more: the line that says so is no problem (it was ``21 problems``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SHOWN = 20  # problems of one file, then a line that says there are more


def task(name: str) -> str:
    return (
        f"apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: {name}\n"
        '  namespace: ops\nspec:\n  schedule: "0 5 * * *"\n  command:\n    args: ["true"]\n'
    )


INVALID = (
    "{apiVersion: crontask.dev/v1alpha1, kind: CronTask, metadata: {name: NAME},"
    ' spec: {schedule: "99 * * * *", command: {args: [x]}}}\n'
)


def invalid(names: list[str]) -> str:
    """Documents of invalid tasks, one a line (7 500 of them within a file's 1 MiB)."""
    return "---\n".join(INVALID.replace("NAME", name) for name in names)


def validate(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_joined_file_with_a_byte_order_mark_reads_both_tasks(tmp_path: Path) -> None:
    # As `cat one.yaml two.yaml`, two.yaml saved by Notepad.
    (tmp_path / "cat.yaml").write_bytes(
        task("one").encode() + b"---\n" + "\ufeff".encode() + task("two").encode()
    )
    done = validate(tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok: 1 file, 2 tasks\n", "")


@pytest.mark.parametrize(("tasks", "summary"), [(SHOWN, "20 problems"), (7500, "20+ problems")])
def test_the_summary_counts_problems_not_the_line_that_says_there_are_more(
    tmp_path: Path, tasks: int, summary: str
) -> None:
    (tmp_path / "many.yaml").write_text(invalid([f"t{i}" for i in range(tasks)]))
    done = validate(tmp_path)
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    assert len([line for line in lines if "spec.schedule" in line]) == SHOWN
    if tasks > SHOWN:
        assert lines[-1].endswith(": more problems in this file; only the first 20 are reported")
    assert done.stderr == f"{summary} (1 file, 0 tasks)\n"


def test_each_file_cut_off_is_counted_apart(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(invalid([f"{name}{i}" for i in range(SHOWN + 5)]))
    (tmp_path / "c.yaml").write_text(invalid(["c"]))
    done = validate(tmp_path)
    assert done.stderr == "41+ problems (3 files, 0 tasks)\n"
