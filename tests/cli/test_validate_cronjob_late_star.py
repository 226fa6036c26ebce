"""`crontask validate` warns of a day field with ``*`` after its first item (``0 9 1,* * 1``),
which a Kubernetes CronJob counts as unrestricted, and still passes; the rewrite it offers for
the CronJob's days is quiet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_the_warning_names_the_place_and_validation_passes(tmp_path: Path) -> None:
    (tmp_path / "mondays.yaml").write_text(TASK.format(name="mondays", schedule="0 9 1,* * 1"))
    (tmp_path / "rewritten.yaml").write_text(TASK.format(name="rewritten", schedule="0 9 * * 1"))
    done = validate(str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{tmp_path / 'mondays.yaml'}:1:1: warning: default/mondays: schedule '0 9 1,* * 1': "
        "day-of-month '1,*' has '*' after its first item: here a day field is unrestricted only "
        "when it starts with '*' (as in Vixie cron), so a day matching either field runs, which "
        "is every day; a Kubernetes CronJob counts a '*' anywhere, and runs only on the days of "
        "day-of-week '1': write '*' for the CronJob's days or '1-31' for these, which both read "
        "alike",
        "ok: 2 files, 2 tasks, 1 warning",
    ]
