"""A count, a number of seconds or a switch written as something else says what it was read as
and what to write, as a string field's message does (``a string, not the number 8080``):
``timeoutSeconds: "30"`` is refused (as the API server refuses it for a CronTask resource),
and pydantic's "Input should be a valid integer" left the user looking at a 30 that is one.
Through ``crontask validate`` on a real file, and the same words from the API's wording of a
document (``messages.problems``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.model import CronTask
from reconciler.sources.messages import MAX_SHOWN, problems
from tests.helpers import crontask_cli, task_doc

FILE = """apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: quoted}
spec:
  schedule: "0 2 * * *"
  suspend: "off"
  timeoutSeconds: "30"
  startingDeadlineSeconds: 1.5
  jitterSeconds: yes
  retry: {limit: 1e3, backoffSeconds: "10", backoffMultiplier: [2]}
  command: {args: ["true"]}
"""

EXPECTED = [
    "6:3: spec.suspend: true or false, not the string 'off': write false",
    "7:3: spec.timeoutSeconds: a whole number, not the string '30': write it without quotes",
    "8:3: spec.startingDeadlineSeconds: a whole number, not the number 1.5",
    "9:3: spec.jitterSeconds: a whole number, not the boolean true (in YAML, an unquoted yes, "
    "on or true)",
    # YAML 1.1 reads a number with an exponent and no '.' as text; kubectl's YAML as a number.
    "10:11: spec.retry.limit: a whole number, not the string '1e3': write it as 1000",
    "10:23: spec.retry.backoffSeconds: a number, not the string '10': write it without quotes",
    "10:45: spec.retry.backoffMultiplier: a number, not a list",
]


def test_validate_says_what_was_read_and_what_to_write(tmp_path: Path) -> None:
    path = tmp_path / "quoted.yaml"
    path.write_text(FILE)
    done = crontask_cli("validate", str(path))
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [f"{path}:{line}" for line in EXPECTED]


def worded(spec: dict[str, Any]) -> list[str]:
    """A document's problems as the API words them (a 422's errors)."""
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(task_doc(**spec))
    return [str(p) for p in problems(caught.value, MAX_SHOWN)[0]]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"suspend": 1}, "spec.suspend: true or false, not the number 1"),
        ({"suspend": "True"}, "spec.suspend: true or false, not the string 'True': write true"),
        ({"suspend": "maybe"}, "spec.suspend: true or false, not the string 'maybe'"),
        (
            {"timeoutSeconds": "1.5e2"},
            "spec.timeoutSeconds: a whole number, not the string '1.5e2': write it as 150",
        ),
        (
            {"timeoutSeconds": "1e400"},
            "spec.timeoutSeconds: a whole number, not the string '1e400'",
        ),
        (
            # No number of 100 digits to write, cut to fit a line.
            {"timeoutSeconds": "1e99"},
            "spec.timeoutSeconds: a whole number, not the string '1e99'",
        ),
        (
            {"timeoutSeconds": "thirty"},
            "spec.timeoutSeconds: a whole number, not the string 'thirty'",
        ),
        (
            {"timeoutSeconds": "x" * 500},
            f"spec.timeoutSeconds: a whole number, not the string '{'x' * 40}...'",
        ),
        ({"timeoutSeconds": {"a": 1}}, "spec.timeoutSeconds: a whole number, not a map"),
        # Unquoted, YAML 1.1 reads 017 as the octal 15, and JSON refuses it, +30 and 1. alike.
        (
            {"timeoutSeconds": "017"},
            "spec.timeoutSeconds: a whole number, not the string '017': write it as 17",
        ),
        (
            {"timeoutSeconds": "+30"},
            "spec.timeoutSeconds: a whole number, not the string '+30': write it as 30",
        ),
        (
            {"retry": {"backoffSeconds": "1."}},
            "spec.retry.backoffSeconds: a number, not the string '1.': write it as 1.0",
        ),
        (
            {"retry": {"backoffSeconds": "0.5"}},
            "spec.retry.backoffSeconds: a number, not the string '0.5': write it without quotes",
        ),
        (
            {"retry": {"backoffSeconds": "2.5e1"}},
            "spec.retry.backoffSeconds: a number, not the string '2.5e1': write it as 25.0",
        ),
        (
            {"retry": {"backoffSeconds": False}},
            "spec.retry.backoffSeconds: a number, not the boolean false (in YAML, an unquoted "
            "no, off or false)",
        ),
    ],
)
def test_the_api_words_them_alike(spec: dict[str, Any], expected: str) -> None:
    assert worded(spec) == [expected]
