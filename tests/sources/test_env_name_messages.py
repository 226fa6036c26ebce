"""An environment variable name may have 256 characters, and a message is cut at 200: an
error about one is at its key, whose place quotes the name as an excerpt, so that its reason
is always said, and one entry too long for the kernel is reported at that entry, not at the
command."""

from __future__ import annotations

from reconciler.sources.documents import parse_text

HEAD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: t\n  namespace: ops\n"
    'spec:\n  schedule: "0 5 * * *"\n  command:\n    args: ["true"]\n    env:\n'
)
SHOWN = 40  # characters of a name a message quotes


def only_error(text: str) -> str:
    (error,) = parse_text(text, "t.yaml").errors
    return str(error)


def test_an_invalid_name_of_255_characters_says_it_is_invalid() -> None:
    error = only_error(HEAD + "      " + "V" * 255 + "-: x\n")
    assert error == (
        "t.yaml:11:7: spec.command.env." + "V" * SHOWN + "...: not a valid environment variable"
        " name: letters, digits and '_', not starting with a digit"
    )


def test_a_long_reserved_name_says_it_is_reserved() -> None:
    error = only_error(HEAD + "      CRONTASK_" + "V" * 240 + ": x\n")
    assert error == (
        "t.yaml:11:7: spec.command.env.CRONTASK_" + "V" * (SHOWN - 9) + "...: names"
        " starting with CRONTASK_ are set by crontask: choose another"
    )


def test_a_short_name_is_quoted_whole_and_escaped() -> None:
    error = only_error(HEAD + '      "A\\tB": x\n')
    assert (
        error == "t.yaml:11:7: spec.command.env.A\\tB: not a valid environment variable name: "
        "letters, digits and '_', not starting with a digit"
    )


def test_an_entry_past_the_kernels_bound_is_reported_at_the_entry() -> None:
    name = "V" * 256  # the longest name allowed
    text = HEAD + "      A: x\n      " + name + ': "' + "\U0001f600" * 32767 + '"\n'
    error = only_error(text)
    assert error == (
        "t.yaml:12:7: spec.command.env." + "V" * SHOWN + "...: this entry (name=value) is"
        " 131325 bytes in UTF-8, more than the 131071 the kernel gives a program in one argument"
        " or environment entry"
    )


def test_an_argument_past_the_kernels_bound_is_reported_at_the_argument() -> None:
    text = HEAD.removesuffix("    env:\n").replace(
        '["true"]', '["true", "' + "\U0001f600" * 32768 + '"]'
    )
    assert only_error(text) == (
        "t.yaml:9:20: spec.command.args[1]: this argument is 131072 bytes in UTF-8, more than the"
        " 131071 the kernel gives a program in one argument or environment entry"
    )
