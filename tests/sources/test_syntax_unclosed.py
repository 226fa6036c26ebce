"""A quote, '[' or '{' left open is found by YAML where it gives up, often lines below (the next
'---', the end of the file, the next key): the error now also says where the open one starts,
which the parser knows, so the reader need not search the file for it."""

from __future__ import annotations

import pytest

from reconciler.sources.documents import parse_text

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: a}
spec:
  schedule: %s
  command: {args: [/bin/true]}
---
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: b}
spec:
  schedule: "@daily"
  command: {args: [/bin/true]}
"""


@pytest.mark.parametrize(
    ("schedule", "said"),
    [
        ('"@daily', "the quoted value that starts at line 5, column 13 is not closed"),
        ("'@daily", "the quoted value that starts at line 5, column 13 is not closed"),
        ('["@daily"', "inside the '[' that starts at line 5, column 13"),
        ('{at: "@daily"', "inside the '{' that starts at line 5, column 13"),
    ],
)
def test_where_the_open_one_starts_is_said(schedule: str, said: str) -> None:
    [error] = [str(e) for e in parse_text(TASK % schedule, "t.yaml").errors]
    assert error.startswith("t.yaml:")
    assert error.endswith(f" ({said})"), error


def test_a_comma_left_out_is_not_said_to_be_a_bracket() -> None:
    [error] = [str(e) for e in parse_text("a: [1, 2\n  3: x]\n", "t.yaml").errors]
    assert error == (
        "t.yaml:2:4: YAML syntax error: did not find expected ',' or ']' "
        "(inside the '[' that starts at line 1, column 4)"
    )


def test_an_error_on_the_line_it_starts_adds_nothing() -> None:
    [error] = [str(e) for e in parse_text('a: [1, "x\\q"]\n', "t.yaml").errors]
    assert "starts at" not in error, error
