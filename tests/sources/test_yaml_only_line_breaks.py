"""U+0085, U+2028 and U+2029 are line breaks to YAML 1.1 (PyYAML's and libyaml's marks count
them), not to an editor, grep or GitHub. One anywhere in a file (a comment, a quoted value) put
every later error a line too low (``val.yaml:10:3`` for a field on line 9), and its own line's
columns off. Places are now counted at ``\\n``, ``\\r\\n`` and ``\\r`` only, with either reader,
a leading byte order mark still no column."""

from __future__ import annotations

import pytest
import yaml

from reconciler.sources import documents
from reconciler.sources.documents import parse_text

BREAKS = ["\x85", "\u2028", "\u2029"]


@pytest.fixture(params=[yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "_Loader", request.param)


def task(name: str, args: str = '["true"]') -> str:
    return (
        f"apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: {name}\n"
        f'spec:\n  schedule: "0 5 * * *"\n  command:\n    args: {args}\n'
    )


def errors(text: str) -> list[str]:
    return [str(error) for error in parse_text(text, "t.yaml").errors]


@pytest.mark.parametrize("brk", BREAKS)
@pytest.mark.parametrize("bom", ["", "\ufeff"])
@pytest.mark.usefixtures("loader")
def test_an_error_after_one_in_a_value_is_at_its_line(brk: str, bom: str) -> None:
    text = bom + task("val", f'["sh", "-c", "echo a{brk}b"]') + "  bogus: 1\n"
    assert errors(text) == ["t.yaml:9:3: spec.bogus: unknown field"]


@pytest.mark.parametrize("brk", BREAKS)
@pytest.mark.usefixtures("loader")
def test_a_syntax_error_after_one_in_a_comment_is_at_its_line_and_column(brk: str) -> None:
    # The parser ends the comment there: "team" starts a line of its own to YAML.
    (error,) = errors(f"# owner: ops{brk}team\r\n" + task("com"))
    assert error.startswith("t.yaml:2:11: YAML syntax error: ")


@pytest.mark.parametrize("bom", ["", "\ufeff"])
@pytest.mark.usefixtures("loader")
def test_an_error_on_the_line_of_one_is_at_its_column(bom: str) -> None:
    # The ']' is the 10th character of the line, the byte order mark none.
    (error,) = errors(f'{bom}a: 1\nb: "x\u2028y" ]\n')
    assert error.startswith("t.yaml:2:10: YAML syntax error: ")


@pytest.mark.usefixtures("loader")
def test_each_task_of_the_file_is_at_the_line_of_its_document() -> None:
    text = task("one", '["a\u2028b"]') + "---\n" + task("two")
    parsed = parse_text(text, "t.yaml")
    assert parsed.errors == []
    assert [(d.location.line, d.location.column) for d in parsed.definitions] == [(1, 1), (10, 1)]


@pytest.mark.parametrize("bom", ["", "\ufeff"])
@pytest.mark.usefixtures("loader")
def test_an_error_on_the_first_line_after_one_is_at_its_column(bom: str) -> None:
    # The ']' is the 10th character of the line, the byte order mark none.
    (error,) = errors(f'{bom}a: "x\u2028y" ]\n')
    assert error.startswith("t.yaml:1:10: YAML syntax error: ")


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("x: ééé\x01\n", "1:7"),  # libyaml counts bytes: two for an é
        ("\ufeffx: \x01\n", "1:4"),  # three for a byte order mark, which is no column
        ("a: 1\nb: 😀😀\x01\n", "2:6"),  # four for each of these
        ("#\u2028\nx: éé\x01\n", "2:6"),
    ],
)
def test_an_unacceptable_character_is_at_its_line_and_column(text: str, place: str) -> None:
    # libyaml's (crontask's loader): PyYAML's own reader refuses the text before any parsing.
    assert documents._Loader is getattr(yaml, "CSafeLoader", None)
    assert errors(text) == [
        f"t.yaml:{place}: unacceptable character #x0001: control characters are not allowed"
    ]


@pytest.mark.usefixtures("loader")
def test_objects_run_together_are_said_at_their_lines() -> None:
    text = task("one", '["a\u2028b"]') + "metadata:\n  name: other\n"
    assert errors(text) == [
        "t.yaml:9:1: metadata: duplicate key (objects at lines 1 and 9 run together, no '---'"
        " between them: the CronTask is the one at line 1)"
    ]
