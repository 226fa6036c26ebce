"""Every environment variable name that cannot be one is an error at its own key, each said:
the first alone was said, at the `env` map, and the next run of `validate` found the next."""

from __future__ import annotations

from reconciler.sources.documents import parse_text

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: a}
spec:
  schedule: "@daily"
  command:
    args: [/bin/true]
    env:
      GOOD: x
      A=B: x
      1X: y
      CRONTASK_NAME: z
"""


def test_each_bad_name_is_an_error_at_its_key() -> None:
    invalid = "not a valid environment variable name: letters, digits and '_', not starting "
    assert [str(e) for e in parse_text(TASK, "t.yaml").errors] == [
        f"t.yaml:10:7: spec.command.env.A=B: {invalid}with a digit",
        f"t.yaml:11:7: spec.command.env.1X: {invalid}with a digit",
        "t.yaml:12:7: spec.command.env.CRONTASK_NAME: names starting with CRONTASK_ are set by "
        "crontask: choose another",
    ]
