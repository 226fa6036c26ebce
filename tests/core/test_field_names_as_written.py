"""A field is named as the resource spells it (``concurrencyPolicy``), never by the Python name
of the model's attribute (``concurrency_policy``): the models took both, so a file with
``concurrency_policy: Allow`` or ``working_dir: /srv`` passed ``crontask validate`` and ran with
them, while the JSON schema refused it and the API server drops such a field from a CronTask
resource (the same file applied with kubectl ran as Forbid, in crontask's folder). Through
``crontask validate`` on a real file, and the models themselves (an API request's body)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.model import CronTask
from reconciler.sources.messages import MAX_SHOWN, problems
from tests.helpers import task_doc

FILE = """apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: snake}
spec:
  schedule: "0 12 * * *"
  concurrency_policy: Allow
  starting_deadline_seconds: 5
  retry: {backoff_seconds: 3}
  command: {args: ["true"], working_dir: /srv}
"""


def test_validate_refuses_the_python_names(tmp_path: Path) -> None:
    path = tmp_path / "snake.yaml"
    path.write_text(FILE)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout
    assert done.stdout.splitlines() == [
        f"{path}:6:3: spec.concurrency_policy: unknown field (did you mean 'concurrencyPolicy'?)",
        f"{path}:7:3: spec.starting_deadline_seconds: unknown field "
        "(did you mean 'startingDeadlineSeconds'?)",
        f"{path}:8:11: spec.retry.backoff_seconds: unknown field (did you mean 'backoffSeconds'?)",
        f"{path}:9:29: spec.command.working_dir: unknown field (did you mean 'workingDir'?)",
    ]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"time_zone": "Europe/Berlin"}, "spec.time_zone"),
        ({"jitter_seconds": 5}, "spec.jitter_seconds"),
        ({"successful_runs_history_limit": 5}, "spec.successful_runs_history_limit"),
        (
            {"command": None, "http": {"url": "http://x/", "expect_status": "200"}},
            "spec.http.expect_status",
        ),
        (
            {
                "command": None,
                "http": {
                    "url": "http://x/",
                    "headers": [{"name": "A", "value_from": {"env": "B"}}],
                },
            },
            "spec.http.headers[0].value_from",
        ),
    ],
)
def test_the_models_refuse_them(spec: dict[str, Any], field: str) -> None:
    document = task_doc(**spec)
    document["spec"] = {k: v for k, v in document["spec"].items() if v is not None}
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(document)
    said = [str(p) for p in problems(caught.value, MAX_SHOWN)[0]]
    assert said[0].startswith(f"{field}: unknown field"), said


def test_api_version_is_refused_as_written_in_python() -> None:
    document = task_doc()
    document["api_version"] = document.pop("apiVersion")
    with pytest.raises(ValidationError):
        CronTask.model_validate(document)
