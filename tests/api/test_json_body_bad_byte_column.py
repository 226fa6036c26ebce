"""A byte that is not UTF-8 (or a NUL) in a JSON body is placed at "line L column C" with C
in characters, as ``json`` places every other error of the body: a ``é`` before it on its line
is one column, not two, and a byte order mark is read past (as the JSON's errors read past
it). So the same spot is said with the same column, whichever error is there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.api.jsonbody import BodyProblem, parse_object
from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import JSON, LiveApi, files_root
from tests.api.test_problems import assert_problem

BOM = b"\xef\xbb\xbf"


def said(body: bytes) -> str:
    with pytest.raises(BodyProblem) as caught:
        parse_object(body)
    return caught.value.message


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b'{"kind": "Cr\xc3\xb6n",\n "\xc3\xa9": ', b"}"),  # a 2-byte character, line 2
        (b'{"\xe2\x82\xac\xf0\x9f\x98\x80": ', b"}"),  # 3 and 4 bytes, line 1
        (BOM + b'{"\xc3\xa9": ', b"}"),  # past a byte order mark, as JSON's errors are
    ],
    ids=["two-bytes", "three-and-four", "byte-order-mark"],
)
def test_a_bad_byte_is_placed_where_a_json_error_there_is(before: bytes, after: bytes) -> None:
    json_error = said(before + after)  # "Expecting value" at the '}'
    where = json_error.rpartition(" at ")[2]
    assert json_error == f"invalid JSON: Expecting value at {where}"
    assert said(before + b"\xff" + after) == f"not UTF-8: byte 0xff at {where}"


def test_a_nul_is_placed_in_characters() -> None:
    body = '{"é": "\0"}'.encode()
    assert said(body).startswith("a NUL byte at line 1 column 8, which no JSON text holds")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)))
    yield instance
    instance.stop()


def test_the_api_says_the_column_in_characters(live: LiveApi) -> None:
    body = '{"apiVersion": "crontask.dev/v1alpha1",\n "kind": "Crön'.encode() + b'\xe9Task"}'
    with live.client() as client:
        answer = client.post("/api/v1/tasks", content=body, headers=JSON)
    problem = assert_problem(answer, 422, "invalid-request")
    assert problem["detail"] == "body: not UTF-8: byte 0xe9 at line 2 column 15"
