"""Problem lines that appear and go, told in proportion to what a pass changed."""

from __future__ import annotations

import pytest

from reconciler.core.desired import Conflict, DefinitionError, Location, assemble, reassemble
from reconciler.core.problem_lines import ProblemLines, Told, subject
from tests.helpers import definition


def _error(path: str, message: str = "bad", key: str | None = None) -> DefinitionError:
    return DefinitionError(Location("file", path, 1, 1), message, key)


def test_lines_appear_once_and_go_once() -> None:
    lines = ProblemLines()
    a, b = _error("a.yaml"), _error("b.yaml", key="default/b")
    first = assemble([], [a, b])
    appeared, resolved = lines.update(first)
    assert [line for line, _ in appeared] == ["a.yaml:1:1: bad", "b.yaml:1:1: bad"]
    assert [problem for _, problem in appeared] == [a, b]
    assert resolved == []
    assert lines.update(reassemble(first, set(), [], [a, b])) == ([], [])
    assert lines.update(reassemble(first, set(), [], [b])) == ([], ["a.yaml:1:1: bad"])


def test_a_file_read_again_saying_the_same_is_no_change() -> None:
    # A re-read makes new objects with the same text: nothing to tell.
    lines = ProblemLines()
    first = assemble([], [_error("a.yaml")])
    lines.update(first)
    assert lines.update(reassemble(first, set(), [], [_error("a.yaml")])) == ([], [])


def test_a_line_two_problems_say_is_shown_until_both_go() -> None:
    lines = ProblemLines()
    one, two = _error("a.yaml"), _error("a.yaml")
    first = assemble([], [one, two])
    assert len(lines.update(first)[0]) == 1
    second = reassemble(first, set(), [], [two])
    assert lines.update(second) == ([], [])
    assert lines.update(reassemble(second, set(), [], [])) == ([], ["a.yaml:1:1: bad"])


def test_conflicts_are_lines_too() -> None:
    lines = ProblemLines()
    state = assemble([definition("a", path="x"), definition("a", path="y")])
    ((line, problem),) = lines.update(state)[0]
    assert isinstance(problem, Conflict)
    assert line.startswith("default/a is defined more than once")
    assert subject(problem) == ("default/a", ("file",))  # both declarations: one kind
    after = reassemble(state, {"default/a"}, [definition("a", path="x")])
    assert lines.update(after) == ([], [line])


def test_an_edit_among_many_errors_formats_none_of_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # 100 000 errors (5 000 broken files) made every pass format them all, each consumer:
    # 0.2 s a pass. An edit of a good file now formats nothing.
    errors = [_error(f"f{i}.yaml") for i in range(2_000)]
    lines = ProblemLines()
    previous = assemble([definition("a")], errors)
    lines.update(previous)
    formatted: list[DefinitionError] = []
    plain = DefinitionError.__str__

    def counted(self: DefinitionError) -> str:
        formatted.append(self)
        return plain(self)

    monkeypatch.setattr(DefinitionError, "__str__", counted)
    edited = reassemble(previous, {"default/a"}, [definition("a", schedule="0 * * * *")], errors)
    assert lines.update(edited) == ([], [])
    assert formatted == []
    fixed = reassemble(edited, set(), [], [*errors[1:], _error("new.yaml")])
    assert lines.update(fixed) == (
        [("new.yaml:1:1: bad", fixed.errors[-1])],
        ["f0.yaml:1:1: bad"],
    )
    assert len(formatted) == 2


def test_told_news_are_problems_not_lines() -> None:
    told = Told()
    a3 = DefinitionError(Location("file", "a.yaml", 3, 1), "spec: bad", "default/a")
    a5 = DefinitionError(Location("file", "a.yaml", 5, 1), "spec: bad", "default/a")
    b = DefinitionError(Location("file", "b.yaml", 1, 1), "spec: bad", "default/b")
    assert told.news([("a3", a3)], []) == [("a3", a3)]
    assert told.news([("a5", a5), ("b", b)], ["a3"]) == [("b", b)]  # a moved: no news
    assert told.news([], ["a5"]) == []
    assert told.news([("a5", a5)], []) == [("a5", a5)]  # gone, then back: news again
    # Two lines of one problem appearing in one pass are both news.
    c1 = DefinitionError(Location("file", "c.yaml", 1, 1), "x", "default/c")
    c2 = DefinitionError(Location("file", "c.yaml", 2, 1), "x", "default/c")
    assert told.news([("c1", c1), ("c2", c2)], []) == [("c1", c1), ("c2", c2)]


def test_the_lines_of_a_file_come_in_its_order() -> None:
    """Sorted as text, ``bad.yaml:105`` came before ``bad.yaml:15`` in the log, and went so;
    a number of thousands of digits (a message may quote one) is compared without an int."""
    lines = ProblemLines()
    errors = [
        DefinitionError(Location("file", "bad.yaml", n, 1), "bad") for n in (105, 15, 6, 1000)
    ]
    huge = [DefinitionError(Location("file", "big.yaml", 1, 1), "9" * n) for n in (5000, 4999)]
    first = assemble([], [*errors, *huge])
    appeared, _ = lines.update(first)
    assert [line for line, _ in appeared][:4] == [
        "bad.yaml:6:1: bad",
        "bad.yaml:15:1: bad",
        "bad.yaml:105:1: bad",
        "bad.yaml:1000:1: bad",
    ]
    assert [len(line) for line, _ in appeared][4:] == [
        len("big.yaml:1:1: ") + n for n in (4999, 5000)
    ]
    _, resolved = lines.update(reassemble(first, set(), [], []))
    assert resolved[:2] == ["bad.yaml:6:1: bad", "bad.yaml:15:1: bad"]
