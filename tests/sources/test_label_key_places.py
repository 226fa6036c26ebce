"""A label or annotation key of no length or too long is an error at that key, each one said:
the error was at the map, without saying which key."""

from __future__ import annotations

from reconciler.sources.documents import parse_text

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: a
  labels:
    team: ops
    "": x
  annotations:
    %s: y
spec:
  schedule: "@daily"
  command: {args: [/bin/true]}
"""


def test_each_bad_key_is_an_error_at_its_place() -> None:
    errors = [str(e) for e in parse_text(TASK % ("k" * 318), "t.yaml").errors]
    assert errors == [
        "t.yaml:7:5: metadata.labels.: keys are 1 to 317 characters long, not 0",
        f"t.yaml:9:5: metadata.annotations.{'k' * 40}...: keys are 1 to 317 characters long, "
        "not 318",
    ]
