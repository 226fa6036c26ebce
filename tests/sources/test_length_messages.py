"""A value too long or a list too long or too short is said in crontask's words, with how
long it is: pydantic's "List should have at least 1 item after validation, not 0" spoke of its
own validation, and "String should have at most 64 characters" left out the value's length."""

from __future__ import annotations

import pytest

from reconciler.sources.documents import parse_text

BASE = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: a}
spec:
  schedule: "@daily"
"""


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            BASE + "  command: {args: []}\n",
            "6:13: spec.command.args: at least 1 item, not 0",
        ),
        (
            BASE + "  command: {args: [" + ", ".join(["x"] * 257) + "]}\n",
            "6:13: spec.command.args: at most 256 items, not 257",
        ),
        (
            BASE
            + "  command: {args: [x], env: {"
            + ", ".join(f"A{i}: x" for i in range(257))
            + "}}\n",
            "6:24: spec.command.env: at most 256 entries, not 257",
        ),
        (
            BASE + "  timeZone: " + "A" * 65 + "\n  command: {args: [x]}\n",
            "6:3: spec.timeZone: at most 64 characters, not 65",
        ),
        (
            BASE.replace("name: a", "name: " + "a" * 64) + "  command: {args: [x]}\n",
            "3:12: metadata.name: at most 63 characters, not 64",
        ),
    ],
)
def test_lengths_are_said_with_the_values(text: str, said: str) -> None:
    assert [str(e) for e in parse_text(text, "t.yaml").errors] == [f"t.yaml:{said}"]
