"""A field written without a space after its colon (``name:nightly``) is, in YAML, one string
where a map of fields goes; the message said only ``a map of fields such as name (not a
string)``. It now says to add the space, naming the field (the model's word, never the value,
which may be a secret: ``password:hunter2``)."""

from __future__ import annotations

from reconciler.sources.documents import parse_text

HEAD = "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"


def test_a_field_without_a_space_after_its_colon_is_named() -> None:
    text = HEAD + 'metadata:\n  name:nightly\nspec:\n  schedule: "@daily"\n  command: {args: [x]}\n'
    (error,) = parse_text(text, "t.yaml").errors
    assert str(error) == (
        "t.yaml:3:1: metadata: a map of fields such as name (not a string: write a space after "
        "the ':' of 'name:')"
    )


def test_a_nested_one_too_and_the_value_is_not_quoted() -> None:
    text = (
        HEAD
        + "metadata: {name: n}\nspec:\n  schedule: '@daily'\n  http:\n    url:https://a/s3cret\n"
    )
    (error,) = parse_text(text, "t.yaml").errors
    assert str(error) == (
        "t.yaml:6:3: spec.http: a map of fields such as url (not a string: write a space after "
        "the ':' of 'url:')"
    )


def test_any_other_string_is_worded_as_before() -> None:
    text = HEAD + 'metadata: {name: n}\nspec:\n  schedule: "@daily"\n  retry: nope:x\n'
    text += "  command: {args: [x]}\n"
    (error,) = parse_text(text, "t.yaml").errors
    assert str(error) == (
        "t.yaml:6:3: spec.retry: a map of fields such as limit, backoffSeconds (not a string)"
    )


def test_a_command_without_a_space_after_args_colon_is_named_too() -> None:
    """A command has words of its own for a string (a crontab line); ``args:[x]`` is the slip."""
    text = HEAD + 'metadata: {name: n}\nspec:\n  schedule: "@daily"\n  command:\n    args:[x]\n'
    (error,) = parse_text(text, "t.yaml").errors
    assert str(error) == (
        "t.yaml:6:3: spec.command: a map such as {args: [program, argument, ...]} (not a string: "
        "write a space after the ':' of 'args:')"
    )
