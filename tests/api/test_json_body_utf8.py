"""A CronTask sent as JSON must be UTF-8, as a task file and a YAML body must: JSON's reader
guesses UTF-16 and UTF-32 from the first bytes, so ``POST``/``PUT /api/v1/tasks`` and
``POST /api/v1/plan`` (``application/json``) took bodies in those encodings that the same
bytes as YAML or a file are refused for ("not UTF-8"). A UTF-8 byte order mark is read past,
as a task file's is. Against the real service over real files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc

JSON = {"content-type": "application/json"}
TEXT = json.dumps(task_doc("wide", "ops"))

# Each encoding JSON's reader guessed (``json.detect_encoding``), and what is said of it: a
# byte order mark is no UTF-8; without one, the text's ASCII is valid UTF-8 between NULs.
REFUSED = [
    ("utf-16", "not UTF-8: byte 0xff at line 1 column 1"),
    ("utf-32", "not UTF-8: byte 0xff at line 1 column 1"),
    ("utf-16-be", "a NUL byte at line 1 column 1"),
    ("utf-16-le", "a NUL byte at line 1 column 2"),
    ("utf-32-be", "a NUL byte at line 1 column 1"),
    ("utf-32-le", "a NUL byte at line 1 column 2"),
]
NUL_NOTE = ", which no JSON text holds (UTF-16 or UTF-32? send UTF-8)"


def _said(said: str) -> str:
    return said + NUL_NOTE if said.startswith("a NUL") else said


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)))
    yield instance
    instance.stop()


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(("encoding", "said"), REFUSED, ids=[e for e, _ in REFUSED])
def test_a_task_not_in_utf8_is_422_as_a_file_is(
    live: LiveApi, method: str, encoding: str, said: str
) -> None:
    path = "/api/v1/tasks" if method == "POST" else "/api/v1/tasks/ops/wide"
    with live.client() as client:
        answer = client.request(method, path, content=TEXT.encode(encoding), headers=JSON)
        problem = assert_problem(answer, 422, "invalid-request")
        assert problem["detail"] == f"body: {_said(said)}"
        assert problem["errors"] == [{"location": ["body"], "message": _said(said)}]
        assert client.get("/api/v1/tasks/ops/wide").status_code == 404  # nothing stored


def test_a_byte_that_is_not_utf8_is_placed_as_in_a_file(live: LiveApi) -> None:
    body = b'{"apiVersion": "crontask.dev/v1alpha1",\n "kind": "Cron\xe9Task"}'
    with live.client() as client:
        answer = client.post("/api/v1/tasks", content=body, headers=JSON)
    problem = assert_problem(answer, 422, "invalid-request")
    assert problem["detail"] == "body: not UTF-8: byte 0xe9 at line 2 column 15"


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_utf8_byte_order_mark_is_read_past_as_in_a_file(live: LiveApi, method: str) -> None:
    path = "/api/v1/tasks" if method == "POST" else "/api/v1/tasks/ops/wide"
    with live.client() as client:
        answer = client.request(method, path, content=TEXT.encode("utf-8-sig"), headers=JSON)
        assert answer.status_code == 201, answer.text
        stored = client.get("/api/v1/tasks/ops/wide").json()
    assert stored["resource"]["spec"]["schedule"] == "* * * * *"


def test_a_json_error_after_a_byte_order_mark_is_placed_as_without_it(live: LiveApi) -> None:
    broken = b'{"kind": "CronTask",\n  "spec": }'
    with live.client() as client:
        plain = client.post("/api/v1/tasks", content=broken, headers=JSON)
        marked = client.post("/api/v1/tasks", content=b"\xef\xbb\xbf" + broken, headers=JSON)
    said = "body: invalid JSON: Expecting value at line 2 column 11"
    assert assert_problem(plain, 422)["detail"] == said
    assert assert_problem(marked, 422)["detail"] == said


@pytest.mark.parametrize(("encoding", "said"), REFUSED, ids=[e for e, _ in REFUSED])
def test_a_plan_of_json_not_in_utf8_is_its_problem_as_yaml_is(
    live: LiveApi, encoding: str, said: str
) -> None:
    with live.client() as client:
        answer = client.post("/api/v1/plan", content=TEXT.encode(encoding), headers=JSON)
        as_yaml = client.post(
            "/api/v1/plan",
            content=TEXT.encode(encoding),
            headers={"content-type": "application/yaml"},
        )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["steps"] == []  # not planned as an add: not read at all
    assert found["problems"] == [f"body:1:1: {_said(said)}"]
    # The same bytes as YAML: refused too (the encodings with a BOM as "not UTF-8").
    assert as_yaml.status_code == 200, as_yaml.text
    assert as_yaml.json()["steps"] == []
    assert len(as_yaml.json()["problems"]) == 1
