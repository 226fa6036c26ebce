"""What crontask's own memory is, for sizing the example Deployment's memory request and limit,
which its commands share: the README and the manifest give the same figures. crontask's RSS
grows with the CronTasks it watches (the watch cache, the schedule and the status reporter),
measured with the Kubernetes API emulator: 143 MiB with none, 194 MiB with 3 000 once every
status was written, 251 MiB at the start with 10 000; the manifest said only "140 MiB idle",
below what 10 000 CronTasks take alone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = (
    r"about (\d+) MiB idle, and about (\d+) KiB more per CronTask"
    r" \(about (\d+) MiB at 10 000\)"
)


def _said(text: str) -> tuple[int, ...]:
    flat = " ".join(line.strip().lstrip("#").strip() for line in text.splitlines())
    found = re.search(FIGURES, flat)
    assert found is not None, "crontask's memory per CronTask is not given"
    return tuple(int(x) for x in found.groups())


def test_the_deployment_and_the_readme_give_the_same_figures() -> None:
    manifest = _said((ROOT / "deploy" / "deployment.yaml").read_text(encoding="utf-8"))
    readme = _said((ROOT / "README.md").read_text(encoding="utf-8"))
    assert manifest == readme
    idle, per_task, at_10k = manifest
    assert abs(idle + per_task * 10_000 / 1024 - at_10k) <= 10
