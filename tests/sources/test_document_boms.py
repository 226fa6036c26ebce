"""A byte order mark where a later document starts (a file saved by Notepad, joined to
another): YAML allows one at the start of any document, and kubectl reads both documents.
The reader took only the text's first, so the joined file was refused whole (``kind: required
field is missing`` and a syntax error). Each is now read as nothing, and every error after it
keeps its line and column."""

from __future__ import annotations

import pytest
import yaml

from reconciler.sources import documents
from reconciler.sources.boms import document_boms
from reconciler.sources.documents import parse_text

BOM = "\ufeff"


def task(name: str, schedule: str = "0 5 * * *") -> str:
    return (
        f"apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: {name}\n"
        f'  namespace: ops\nspec:\n  schedule: "{schedule}"\n  command:\n    args: ["true"]\n'
    )


@pytest.mark.parametrize(
    "text",
    [
        task("one") + "---\n" + BOM + task("two"),  # after the marker (cat a.yaml b.yaml)
        task("one") + BOM + "---\n" + task("two"),  # before it
        task("one") + "--- # b.yaml\n" + BOM + BOM + task("two"),
        task("one") + "...\n" + BOM + "---\n" + task("two"),
        (task("one") + "---\n" + BOM + task("two")).replace("\n", "\r\n"),
        BOM + task("one") + "---\n" + BOM + task("two"),
    ],
)
def test_a_mark_at_the_start_of_a_later_document_is_read_as_nothing(text: str) -> None:
    parsed = parse_text(text, "t.yaml")
    assert parsed.errors == []
    assert [d.key for d in parsed.definitions] == ["ops/one", "ops/two"]
    second = text[: text.rindex("apiVersion")].count("\n") + 1
    assert [(d.location.line, d.location.column) for d in parsed.definitions] == [
        (1, 1),
        (second, 1),
    ]


def test_two_marks_at_the_start_of_a_file() -> None:
    parsed = parse_text(BOM + BOM + task("one"), "t.yaml")
    assert parsed.errors == []
    assert [d.key for d in parsed.definitions] == ["ops/one"]


def test_errors_after_a_mark_keep_their_places() -> None:
    text = task("one") + "---\n" + BOM + task("two", "99 * * * *") + "---\n" + BOM + "a: b: c\n"
    errors = [str(e) for e in parse_text(text, "t.yaml").errors]
    assert errors[0].startswith("t.yaml:17:14: spec.schedule: ")
    # The mark is no column: the key on its line is at column 1, as after a file's first.
    assert errors[1].startswith("t.yaml:21:5: YAML syntax error: ")
    first = [str(e) for e in parse_text(BOM + "a: b: c\n", "t.yaml").errors]
    assert first[0].startswith("t.yaml:1:5: YAML syntax error: ")


def test_a_mark_inside_a_document_is_left_as_it_is() -> None:
    text = task("one") + "  " + BOM + "x: 1\n"
    assert document_boms(text) == text
    assert parse_text(text, "t.yaml").errors  # a character of the document, as YAML has it


def test_the_text_keeps_its_length_and_its_lines() -> None:
    text = BOM + BOM + "a: 1\n---\n" + BOM + "b: 2\r\n" + BOM + "---\nc: 3\n"
    moved = document_boms(text)
    assert moved == BOM + "a: 1 \n--- \nb: 2\r\n--- \nc: 3\n"
    assert len(moved) == len(text)
    assert document_boms("a: 1\n") == "a: 1\n"


def test_without_libyaml_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "_Loader", yaml.SafeLoader)  # PyYAML's reader, not libyaml's
    parsed = parse_text(task("one") + "---\n" + BOM + task("two"), "t.yaml")
    assert parsed.errors == []
    assert [d.key for d in parsed.definitions] == ["ops/one", "ops/two"]


def test_a_mark_before_a_quoted_string_continued_on_the_next_line_keeps_the_string() -> None:
    """A ``\\`` at a line's end continues a double-quoted string without a space: the mark
    made a space at the end of its own line (after the ``\\``) made the name ``'ab  cd'``."""
    second = (
        '{apiVersion: crontask.dev/v1alpha1, kind: CronTask, metadata: {name: "ab\\\n  cd",'
        ' namespace: ops}, spec: {schedule: "* * * * *", command: {args: ["true"]}}}\n'
    )
    for text in (task("one") + "---\n" + BOM + second, BOM + BOM + second):
        parsed = parse_text(text, "t.yaml")
        assert parsed.errors == []
        assert parsed.definitions[-1].key == "ops/abcd"
