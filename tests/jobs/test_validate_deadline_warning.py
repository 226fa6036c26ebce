"""`crontask validate` warns of a job task whose JobSpec's activeDeadlineSeconds is longer than
its timeoutSeconds (the cluster enforces the JobSpec's; crontask's backstop stops the Job at
timeoutSeconds and ``DEADLINE_MARGIN`` after its creation), at the task's place, and passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {{name: {name}}}\n"
    'spec:\n  schedule: "0 0 1 1 *"\n  timeoutSeconds: 4\n  job:\n    spec:\n{deadline}'
    "      template:\n        spec:\n          containers:\n"
    "            - {{name: c, image: busybox}}\n"
)


def test_a_deadline_longer_than_the_timeout_is_warned_of(tmp_path: Path) -> None:
    (tmp_path / "both.yaml").write_text(
        "# the cluster's deadline\n"
        + TASK.format(name="both", deadline="      activeDeadlineSeconds: 100\n")
    )
    (tmp_path / "short.yaml").write_text(
        TASK.format(name="short", deadline="      activeDeadlineSeconds: 4\n")
    )
    (tmp_path / "unset.yaml").write_text(TASK.format(name="unset", deadline=""))
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{tmp_path / 'both.yaml'}:2:1: warning: default/both: the JobSpec's "
        "activeDeadlineSeconds 100 is longer than timeoutSeconds 4: crontask ends the Job "
        "(timedOut) 34s after its creation if it still runs, before the cluster's deadline",
        "ok: 3 files, 3 tasks, 1 warning",
    ]
