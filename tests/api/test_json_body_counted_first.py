"""A JSON body of far more values than a task may count is refused before the JSON reader
builds it: half a million empty lists in a 1 MiB body took some 22 MiB to build, for a body
refused all the same. What is counted first (the ``[``, ``{``, ``,`` and ``:`` outside
strings) is at most twice the values the walk counts, so nothing the walk would take is
refused by it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.api import jsonbody
from reconciler.api.jsonbody import BODY_VALUES, BodyProblem, parse_object

HEAD = '{"apiVersion": "v", "kind": "CronTask", "metadata": {"name": "a", "namespace": "b"}, '
TOO_MANY = f"more than {BODY_VALUES:,} values (the limit for one task)"


class _NoReader:
    """What ``jsonbody`` takes for the ``json`` module: a test fails if it reads the body."""

    JSONDecodeError = json.JSONDecodeError

    @staticmethod
    def loads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the JSON reader was called")


@pytest.fixture
def loads_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonbody, "json", _NoReader)


def _body(items: list[str]) -> bytes:
    return (HEAD + '"spec": {"x": [' + ",".join(items) + "]}}").encode()


@pytest.mark.parametrize("item", ["[]", "{}", "0", '{"a": 1}'])
def test_a_body_of_far_too_many_values_is_refused_unread(loads_refused: None, item: str) -> None:
    with pytest.raises(BodyProblem) as refused:
        parse_object(_body([item] * (2 * BODY_VALUES)))
    assert refused.value.message == TOO_MANY


def test_the_structure_inside_strings_does_not_count() -> None:
    """A script full of commas and brackets, quotes escaped within it, is a few values."""
    script = '"' + '[{,:\\"\\\\' * (BODY_VALUES // 2) + '"'
    data = parse_object(_body([script] * 3))
    assert len(data["spec"]["x"]) == 3


def test_empty_containers_up_to_the_bound_are_read_and_walked() -> None:
    """Each empty container counts twice first (its bracket and the comma before the next):
    a body within the walk's bound is read whatever its containers."""
    data = parse_object(_body(["[]"] * (BODY_VALUES - 100)))
    assert len(data["spec"]["x"]) == BODY_VALUES - 100


def test_a_quote_left_open_after_escapes_is_read_in_linear_time() -> None:
    """``"\\"\\"\\"...`` never closed: a pattern that retries from each quote reads it in
    quadratic time; the count removes escapes first, then pairs the quotes left."""
    with pytest.raises(BodyProblem) as refused:
        parse_object(('{"a": "' + '\\"' * 500_000).encode())
    assert refused.value.message.startswith("invalid JSON: Unterminated string")


def _marks(value: Any) -> int:
    """The ``[``, ``{``, ``,`` and ``:`` JSON writes for ``value`` outside its strings."""
    if isinstance(value, list):
        return 1 + max(len(value) - 1, 0) + sum(_marks(item) for item in value)
    if isinstance(value, dict):
        pairs = len(value)
        return 1 + max(pairs - 1, 0) + pairs + sum(_marks(item) for item in value.values())
    return 0


def test_strings_full_of_escapes_are_passed_over_exactly() -> None:
    """Escaped quotes and backslashes in any order, as json.dumps writes them (ASCII or not):
    the count is what the structure writes, never a mark inside a string."""
    pieces = ['"', "\\", '\\"', '"\\', "[", "{", ",", ":", "é", "\n", "\u2028", "]"]
    for n in range(400):
        text = "".join(pieces[(n * 7 + k * k) % len(pieces)] for k in range(n % 23))
        value: Any = {text: [text, {text + "x": [text]}, []], "k": text}
        for ascii_only in (True, False):
            body = json.dumps(value, ensure_ascii=ascii_only)
            assert jsonbody._most_values(body) == 1 + _marks(value), body
