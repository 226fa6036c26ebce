"""Mapping keys that are no strings (``1:``, ``true:``, ``~:``) are reported where they are:
the YAML text says ``1``, pydantic's path says ``1`` the int, and the two must meet."""

from __future__ import annotations

import pytest

from reconciler.sources.documents import parse_text

HEAD = "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
SPEC = 'spec:\n  schedule: "0 2 * * *"\n  command: {args: ["true"]}\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD + "metadata: {name: i}\n" + SPEC + "  1: 1\n",
            "7:3: spec.1: unknown field (YAML read its name as the number 1)",
        ),
        (
            HEAD + "true: 1\nmetadata: {name: k}\n" + SPEC,
            "3:1: true: unknown field (YAML read its name as the boolean true)",
        ),
        (
            HEAD + "metadata: {name: j}\n" + SPEC + "  ~: 1\n",
            "7:3: spec.null: unknown field (YAML read its name as null)",
        ),
        (
            HEAD + "metadata: {name: f}\n" + SPEC + "  1.5: 1\n",
            "7:3: spec.1.5: unknown field (YAML read its name as the number 1.5)",
        ),
    ],
)
def test_a_key_that_is_no_string_is_reported_where_it_is(text: str, expected: str) -> None:
    (error,) = parse_text(text, "t.yaml").errors
    assert str(error) == f"t.yaml:{expected}"


def test_a_number_and_the_same_text_quoted_are_two_keys_not_a_duplicate() -> None:
    text = HEAD + "metadata: {name: n}\n" + SPEC + '  1: 1\n  "1": 2\n'
    errors = [str(e) for e in parse_text(text, "t.yaml").errors]
    assert errors == [
        "t.yaml:7:3: spec.1: unknown field (YAML read its name as the number 1)",
        "t.yaml:8:3: spec.1: unknown field",
    ]
