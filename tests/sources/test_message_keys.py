"""A mapping key YAML reads as no string (an unquoted ``yes``, ``~``, ``8080``) is named in a
message as YAML read it: pydantic has the key of ``yes`` as 1 and of ``~`` as 'None', and adds
``[key]``, which made ``spec.command.env[1].[key]``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.core.model import CronTask
from reconciler.sources.documents import parse_text
from reconciler.sources.messages import dotted, problems
from tests.helpers import task_doc

HEAD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: t\n  namespace: ops\n"
    'spec:\n  schedule: "0 5 * * *"\n  command:\n    args: ["true"]\n    env:\n'
)


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("yes", "true"),
        ("off", "false"),
        ("~", "null"),
        ("8080", "8080"),
        ("1.5", "1.5"),
        ("2024-01-01", "2024-01-01"),
    ],
)
def test_a_key_that_is_no_string_is_shown_as_yaml_read_it(written: str, shown: str) -> None:
    (error,) = parse_text(HEAD + f"      {written}: x\n", "t.yaml").errors
    assert str(error).startswith(f"t.yaml:11:7: spec.command.env.{shown}: a string, not ")


@pytest.mark.parametrize(
    ("written", "shown"), [("yes", "true"), ("~", "null"), ("2024-01-01", "2024-01-01")]
)
def test_the_value_of_such_a_key_is_named_as_its_key(written: str, shown: str) -> None:
    """The key and its value fail both (``yes: 1``): one entry, named one way in both lines
    (the value's was ``env[1]``, ``env.None``, ``env.datetime.date(2024, 1, 1)``)."""
    errors = parse_text(HEAD + f"      {written}: 1\n", "t.yaml").errors
    assert len(errors) == 2, errors
    for error in errors:
        assert str(error).startswith(f"t.yaml:11:7: spec.command.env.{shown}: a string, not ")


def test_the_api_names_such_a_key_the_same_way() -> None:
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(task_doc(command={"args": ["true"], "env": {True: "x", None: 6}}))
    found, more = problems(caught.value, 20)
    assert sorted(str(p) for p in found) == [
        'spec.command.env.null: a string, not null (an empty value): give one, or "" for an'
        " empty string",
        "spec.command.env.null: a string, not the number 6: quote it to mean the string",
        "spec.command.env.true: a string, not the boolean true (in YAML, an unquoted yes, on or"
        " true): quote it to mean the string",
    ]
    assert more == 0


def test_a_list_index_stays_an_index() -> None:
    assert dotted(("spec", "command", "args", 0)) == "spec.command.args[0]"
    assert dotted(("spec", "command", "env", 8080, "[key]")) == "spec.command.env.8080"


@pytest.mark.parametrize(
    ("written", "at", "expected"),
    [
        # pydantic's words: "[1]: Keys should be strings", "None: ...", "datetime.date(...)".
        ("8080: x\n", "12:1", "8080: unknown field (YAML read its name as the number 8080)"),
        ("~: x\n", "12:1", "null: unknown field (YAML read its name as null)"),
        ("  yes: x\n", "12:3", "spec.true: unknown field (YAML read its name as the boolean true)"),
        (
            "  2024-01-01: x\n",
            "12:3",
            "spec.2024-01-01: unknown field (YAML read its name as the date 2024-01-01)",
        ),
    ],
)
def test_a_field_name_that_is_no_string_is_an_unknown_field(
    written: str, at: str, expected: str
) -> None:
    """Where the resource's own fields are (not a map of names such as ``env``), such a key is
    a field no CronTask has, named as YAML read it, at its place."""
    text = HEAD.replace("spec:\n", "spec:\n  suspend: false\n") + written
    (error,) = parse_text(text, "t.yaml").errors
    assert str(error) == f"t.yaml:{at}: {expected}"


@pytest.mark.parametrize(
    ("written", "at"), [("? [a, b]\n: c\n", "12:3"), ("  ? {a: b}\n  : c\n", "12:5")]
)
def test_a_list_or_map_as_a_key_is_worded(written: str, at: str) -> None:
    """PyYAML's words were "found unhashable key"."""
    text = HEAD.replace("spec:\n", "spec:\n  suspend: false\n") + written
    (error,) = parse_text(text, "t.yaml").errors
    assert str(error) == f"t.yaml:{at}: a list or a map as a key: a key is a name (text)"
