"""The informer's JSON decoding: bounded in depth, so that no object fails a whole list."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from reconciler.sources.kubernetes_wire import PRUNED, Pruned, decode, pruned_path

DEEP = sys.getrecursionlimit() + 200


@pytest.mark.parametrize(
    ("text", "depth", "expected"),
    [
        ("[1, [2, [3]]]", 3, [1, [2, [3]]]),
        ("[1, [2, [3]]]", 2, [1, [2, PRUNED]]),
        ('{"a": [{"b": []}], "c": {}}', 2, {"a": [PRUNED], "c": {}}),
        ('{"a": [[[]]], "b": [[[]]]}', 2, {"a": [PRUNED], "b": [PRUNED]}),
        # Brackets in strings, escaped quotes: data, not structure.
        ('{"a": "[[[{{{\\"]]]"}', 1, {"a": '[[[{{{"]]]'}),
        ('["\\\\", ["\\"["]]', 1, ["\\", PRUNED]),
        ("7", 0, 7),
    ],
)
def test_values_deeper_than_the_bound_are_left_out(text: str, depth: int, expected: Any) -> None:
    assert decode(text, depth) == expected
    assert decode(text.encode(), depth) == expected


def test_an_object_of_any_depth_is_decoded_with_its_metadata() -> None:
    line = (
        '{"type": "ADDED", "object": {"metadata": {"name": "evil", "resourceVersion": "9"}, '
        '"spec": {"job": ' + '{"x": [' * DEEP + "]}" * DEEP + "}}}"
    )
    with pytest.raises(RecursionError):
        json.loads(line)
    event = decode(line, 101)
    assert event["object"]["metadata"] == {"name": "evil", "resourceVersion": "9"}
    where = pruned_path(event["object"])
    assert where is not None
    assert where.startswith("spec.job.x[0].x[0].")
    assert where.count(".x") == 49  # the object counts one level, each {"x": [ two more


def test_what_is_left_out_is_a_string_and_says_why() -> None:
    value = decode("[[[]]]", 1)
    assert isinstance(value[0], Pruned)
    assert json.dumps(value) == '["nested more than 100 levels deep"]'
    assert repr(value) == "[<nested more than 100 levels deep>]"
    assert pruned_path({"a": ["b", "nested more than 100 levels deep"]}) is None  # only ours


@pytest.mark.parametrize("text", ['{"a": [[[', "[[[]]", '{"a": "[[[', "[]]]"])
def test_text_that_is_not_json_fails_as_json(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        decode(text, 2)
