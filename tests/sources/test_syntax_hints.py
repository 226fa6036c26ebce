"""A YAML syntax error a task file's author makes most often says what to write: a schedule
left unquoted starts with '@' (``@daily``), which no plain YAML value may, or with '*'
(``*/5 * * * *``), which YAML reads as an alias; the parser's own words ("found character that
cannot start any token", "did not find expected alphabetic or numeric character") named
neither. Through ``crontask validate`` on real files (libyaml's parser), and PyYAML's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.sources import documents
from tests.helpers import crontask_cli

HEAD = "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: NAME}\nspec:\n"
FILES = {
    "a.yaml": "  schedule: @daily\n  command: {args: [x]}\n",
    "b.yaml": "  schedule: */5 * * * *\n  command: {args: [x]}\n",
    "c.yaml": "  schedule: * * * * *\n  command: {args: [x]}\n",
    "d.yaml": '  schedule: "@daily"\n  command: {args: [echo, `date`]}\n',
    "e.yaml": '  schedule: "@daily"\n\tcommand: {args: [x]}\n',
    "f.yaml": '  schedule:"@daily"\n  command: {args: [x]}\n',
    "g.yaml": '  schedule: "@daily"\n  command:\n    args: [x]\n    workingDir:/tmp\n    env: {}\n',
}
SPACE = "write a space after the ':' of"
AT = "cannot start a plain YAML value: quote the value"
ALIAS = "a value starting with '*' is a YAML alias: quote the value"
EXPECTED = [
    f"a.yaml:5:13: YAML syntax error: found character that cannot start any token ('@' {AT}, "
    'as in "@daily")',
    f"b.yaml:5:14: YAML syntax error: did not find expected alphabetic or numeric character "
    f'({ALIAS}, as in "*/5 * * * *")',
    f"c.yaml:5:14: YAML syntax error: did not find expected alphabetic or numeric character "
    f'({ALIAS}, as in "*/5 * * * *")',
    f"d.yaml:6:26: YAML syntax error: found character that cannot start any token ('`' {AT}, "
    'as in "`date`")',
    "e.yaml:6:1: YAML syntax error: found character that cannot start any token (a tab: YAML "
    "indents with spaces)",
    f"f.yaml:6:10: YAML syntax error: mapping values are not allowed in this context (line 5: "
    f"{SPACE} 'schedule:')",
    f"g.yaml:9:5: YAML syntax error: could not find expected ':' (line 8: {SPACE} 'workingDir:')",
]


def test_validate_says_to_quote(tmp_path: Path) -> None:
    for name, body in FILES.items():
        (tmp_path / name).write_text(HEAD.replace("NAME", name[0]) + body)
    done = crontask_cli("validate", str(tmp_path))
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [f"{tmp_path}/{line}" for line in EXPECTED]


@pytest.mark.parametrize(("name", "expected"), list(zip(FILES, EXPECTED, strict=True)))
def test_pyyamls_parser_gets_the_same_hint(
    name: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where libyaml is not built, PyYAML's parser words the error its own way; the hint is
    the same."""
    monkeypatch.setattr(documents, "_Loader", yaml.SafeLoader)
    (error,) = documents.parse_text(HEAD.replace("NAME", name[0]) + FILES[name], name).errors
    hint = expected[expected.index(" (") :]
    assert str(error).startswith(expected.split(" YAML")[0]), error
    assert str(error).endswith(hint), error


def test_the_line_without_a_space_is_named_as_an_editor_numbers_it() -> None:
    """Lines broken at CRLF; the first of several such lines, where YAML's text starts."""
    text = (HEAD + "  timeoutSeconds:30\n  suspend:true\n  command: {args: [x]}\n").replace(
        "\n", "\r\n"
    )
    (error,) = documents.parse_text(text, "h.yaml").errors
    assert str(error).startswith("h.yaml:7:10: YAML syntax error: mapping values"), error
    assert str(error).endswith(f"(line 5: {SPACE} 'timeoutSeconds:')"), error


@pytest.mark.parametrize("loader", [documents._Loader, yaml.SafeLoader])
def test_a_colon_refused_after_a_value_names_no_line_above(
    loader: type[yaml.SafeLoader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text above holds 'a:b' (a block scalar's), but the colon YAML refuses follows a
    value on its own line: no slip runs on to it, and none is named."""
    monkeypatch.setattr(documents, "_Loader", loader)
    body = "  http:\n    body: |\n      a:b\n    url: http://x/: y\n"
    (error,) = documents.parse_text(HEAD.replace("NAME", "h") + body, "h.yaml").errors
    assert str(error).startswith("h.yaml:8:"), error
    assert str(error).endswith(("in this context", "here")), error


@pytest.mark.parametrize("loader", [documents._Loader, yaml.SafeLoader])
def test_a_slip_on_the_first_line_after_a_byte_order_mark_is_named(
    loader: type[yaml.SafeLoader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor on Windows saves UTF-8 with a byte order mark: the first line starts with it."""
    monkeypatch.setattr(documents, "_Loader", loader)
    text = "\ufeffapiVersion:crontask.dev/v1alpha1\nkind: CronTask\n"
    (error,) = documents.parse_text(text, "b.yaml").errors
    assert str(error).startswith("b.yaml:2:5: YAML syntax error: mapping values"), error
    assert str(error).endswith(f"(line 1: {SPACE} 'apiVersion:')"), error


@pytest.mark.parametrize("loader", [documents._Loader, yaml.SafeLoader])
@pytest.mark.parametrize("line", ["    LONG: v\n", "  - LONG: v\n", '    "LONG": v\n'])
def test_a_key_longer_than_yaml_reads_says_so(
    loader: type[yaml.SafeLoader], line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """YAML ends an implicit key at 1024 characters: libyaml says "mapping values are not
    allowed", PyYAML "could not find expected ':'", and neither names the key."""
    monkeypatch.setattr(documents, "_Loader", loader)
    body = "  labels:\n" + line.replace("LONG", "k" * 1100) + "  command: {args: [x]}\n"
    (error,) = documents.parse_text(HEAD.replace("NAME", "h") + body, "h.yaml").errors
    length = 1102 if '"' in line else 1100
    assert str(error).endswith(
        f" (a key of {length} characters: YAML reads at most 1024 before its ':')"
    ), error
    # One of 1020 is read (and refused by what reads the task, not by YAML).
    body = "  labels:\n" + line.replace("LONG", "k" * 1020) + "  command: {args: [x]}\n"
    errors = documents.parse_text(HEAD.replace("NAME", "h") + body, "h.yaml").errors
    assert errors, "a task without a schedule"
    assert not any("YAML syntax error" in str(error) for error in errors), errors
