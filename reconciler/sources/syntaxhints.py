"""What a YAML syntax error adds to the parser's words when they do not say what to write: a
tab (which an editor does not show), a value that starts with a character a plain YAML value
may not start with (an unquoted ``@daily``), or with ``*``, which YAML reads as an alias (an
unquoted ``*/5 * * * *``). The same hint from libyaml's parser and from PyYAML's, whose words
differ."""

from __future__ import annotations

import yaml

_RESERVED = {"@": '"@daily"', "`": '"`date`"'}  # no plain scalar starts with these (YAML 1.1)
_ALIAS = "while scanning an alias"
_QUOTE_ALIAS = (
    " (a value starting with '*' is a YAML alias: quote the value, as in \"*/5 * * * *\")"
)


def hint(text: str, err: yaml.MarkedYAMLError, libyaml: bool) -> str:
    """`` (a tab: YAML indents with spaces)`` and the like for ``err`` in ``text``; else
    nothing. libyaml's index skips a byte order mark, PyYAML's not."""
    mark = err.problem_mark or err.context_mark
    if mark is None:
        return ""
    index = mark.index + (1 if libyaml and text.startswith("\ufeff") else 0)
    found = text[index : index + 1]
    if found == "\t":
        return " (a tab: YAML indents with spaces)"
    if found in _RESERVED and "cannot start any token" in str(err.problem):
        return (
            f" ('{found}' cannot start a plain YAML value: quote the value, "
            f"as in {_RESERVED[found]})"
        )
    if err.context == _ALIAS:
        return (
            " (a value starting with '*' is a YAML alias: quote the value, as in \"*/5 * * * *\")"
        )
    return ""
