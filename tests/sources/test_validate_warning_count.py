"""``crontask validate``'s summary counts the warnings a folder has, not the lines it prints.

A file's warnings are shown 20 at most, then one line says there are more (a file's state
keeps no more of them). The summary counted the lines: the "more warnings not shown" line as
a warning, and none of those it hides, so 25 pasted CronJobs were ``21 warnings``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.limits import PARALLEL_MIN_FILES

WARNING = (
    "warning: a Kubernetes CronJob is not read by crontask: convert it to a CronTask "
    '(README, "From a CronJob")'
)
CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: "* * * * *"
  jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: busybox}]}}}}
"""
TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {{name: {name}}}
spec: {{schedule: "{schedule}", command: {{args: ["true"]}}}}
"""
SHOWN = 20  # of a file's warnings, then "more warnings not shown"


def validate(*argv: str, cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    return done.stdout.splitlines()


def cronjobs(count: int) -> str:
    return "---\n".join(CRONJOB for _ in range(count))


@pytest.mark.parametrize("count", [SHOWN, SHOWN + 1, 25])
def test_the_summary_counts_every_warning_of_a_file_shown_or_not(
    tmp_path: Path, count: int
) -> None:
    (tmp_path / "cj").mkdir()
    (tmp_path / "cj" / "many.yaml").write_text(cronjobs(count))
    lines = validate("cj", cwd=tmp_path)
    shown = [f"cj/many.yaml:{1 + 7 * i}:1: {WARNING}" for i in range(SHOWN)]
    more = ["cj/many.yaml: warning: more warnings not shown"] if count > SHOWN else []
    summary = f"ok: 1 file, 0 tasks, {count} documents of other kinds ignored, {count} warnings"
    assert lines == [*shown, *more, summary]


def test_a_task_s_warning_counts_beside_the_hidden_ones_of_its_file(tmp_path: Path) -> None:
    # A valid task whose schedule reads differently elsewhere, after 25 CronJobs: its warning
    # is one of the file's, not bounded with the documents' (it is the task's own).
    text = cronjobs(25) + "---\n" + TASK.format(name="weekly", schedule="0 9 * * 1/2")
    (tmp_path / "mixed.yaml").write_text(text)
    lines = validate("mixed.yaml", cwd=tmp_path)
    assert len([line for line in lines if line.endswith(WARNING)]) == SHOWN
    assert lines[SHOWN].startswith("mixed.yaml:176:1: warning: default/weekly: schedule")
    assert lines[SHOWN + 1 :] == [
        "mixed.yaml: warning: more warnings not shown",
        "ok: 1 file, 1 task, 25 documents of other kinds ignored, 26 warnings",
    ]


def test_files_read_by_workers_add_up_their_hidden_warnings(tmp_path: Path) -> None:
    # Enough files to be read on worker processes (-j2): the counts come back with the lines.
    for i in range(PARALLEL_MIN_FILES - 2):
        (tmp_path / f"t{i:04d}.yaml").write_text(TASK.format(name=f"t{i}", schedule="0 9 * * *"))
    (tmp_path / "a.yaml").write_text(cronjobs(23))
    (tmp_path / "b.yaml").write_text(cronjobs(30))
    lines = validate("-j2", ".", cwd=tmp_path)
    assert lines.count("a.yaml: warning: more warnings not shown") == 1
    assert lines.count("b.yaml: warning: more warnings not shown") == 1
    assert len([line for line in lines if line.endswith(WARNING)]) == 2 * SHOWN
    assert lines[-1] == (
        f"ok: {PARALLEL_MIN_FILES} files, {PARALLEL_MIN_FILES - 2} tasks,"
        " 53 documents of other kinds ignored, 53 warnings"
    )
