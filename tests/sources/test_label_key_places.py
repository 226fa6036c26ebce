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
        't.yaml:7:5: metadata.labels."": keys are 1 to 317 characters long, not 0',
        f"t.yaml:9:5: metadata.annotations.{'k' * 40}...: keys are 1 to 317 characters long, "
        "not 318",
    ]


def test_an_empty_key_is_named_as_written() -> None:
    """An empty key is shown quoted, as it is written: ``env."":``, not a path ending in a dot."""
    text = TASK.replace('"": x', "b: x") % "k" + '    env: {"": v}\n'
    text = text.replace(
        "command: {args: [/bin/true]}\n    env", "command:\n    args: [/bin/true]\n    env"
    )
    errors = [str(e) for e in parse_text(text, "t.yaml").errors]
    assert errors == [
        't.yaml:14:11: spec.command.env."": not a valid environment variable name: letters, '
        "digits and '_', not starting with a digit"
    ]
