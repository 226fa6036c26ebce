"""A CronTask sent as JSON is read as strictly as a task file's YAML: a key given twice in one
object (which JSON readers settle by keeping the last one, silently), nesting deeper than a
task file may be, more values than a stored task may count and a number of thousands of
digits are each a 422 naming the place, never a task stored from half of what was sent, nor
a bare 400."""

from __future__ import annotations

import pytest

from reconciler.sources.api import STORED_LIMITS
from reconciler.sources.limits import YamlLimits
from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime
from tests.api.test_problems import assert_problem

JSON = {"content-type": "application/json"}
BODY_DEPTH = YamlLimits().max_depth  # as deep as a task file's YAML may be
BODY_VALUES = STORED_LIMITS.max_values  # as many values as a stored task may count
HEAD = (
    '{"apiVersion": "crontask.dev/v1alpha1", "kind": "CronTask", '
    '"metadata": {"name": "dup", "namespace": "ops"}, '
)


def send(client: TestClient, body: str, method: str = "POST") -> dict[str, object]:
    path = "/api/v1/tasks" if method == "POST" else "/api/v1/tasks/ops/dup"
    answer = client.request(method, path, content=body.encode(), headers=JSON)
    return assert_problem(answer, 422, "invalid-request")


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_key_given_twice_is_422_naming_it(
    client: TestClient, runtime: FakeRuntime, method: str
) -> None:
    body = HEAD + (
        '"spec": {"schedule": "0 0 * * *", "suspend": true, "suspend": false, '
        '"command": {"args": ["true"]}}}'
    )
    problem = send(client, body, method)
    assert problem["errors"] == [
        {
            "location": ["body", "spec", "suspend"],
            "message": "duplicate key (a JSON reader would keep the last one)",
        }
    ]
    assert problem["detail"] == (
        "body.spec.suspend: duplicate key (a JSON reader would keep the last one)"
    )
    assert runtime.task("ops/dup") is None


def test_a_key_given_twice_in_a_list_item_is_placed(client: TestClient) -> None:
    body = HEAD + '"spec": {"schedule": "0 0 * * *", "x": [{"a": 1}, {"b": 1, "b": 2}]}}'
    problem = send(client, body)
    assert problem["errors"][0]["location"] == ["body", "spec", "x", 1, "b"]  # type: ignore[index]


def test_nesting_deeper_than_a_task_file_is_422(client: TestClient) -> None:
    for depth in (BODY_DEPTH + 5, 5000):  # the second, deeper than the JSON reader goes
        body = HEAD + '"spec": ' + "[" * depth + "]" * depth + "}"
        problem = send(client, body)
        assert f"nested deeper than {BODY_DEPTH} levels" in str(problem["detail"])


# Scalars: the walk refuses them, naming the list (twice as many values, or empty containers,
# are refused before the body is read: test_json_body_counted_first).
@pytest.mark.parametrize("item", ["0", '"a"'])
def test_more_values_than_a_task_file_document_is_422_naming_where(
    client: TestClient, runtime: FakeRuntime, item: str
) -> None:
    """A 1 MiB body of half a million values took some 80 MiB to read (its walk alone), and
    sixteen at once took the server past 1 GiB; a stored task reads back only within its
    bound (a task file's document counts 10 000 values at most, and a JobSpec 20 000)."""
    body = (
        HEAD + '"spec": {"schedule": "0 0 * * *", "x": [' + ",".join([item] * BODY_VALUES) + "]}}"
    )
    problem = send(client, body)
    message = f"more than {BODY_VALUES:,} values (the limit for one task)"
    assert problem["errors"] == [{"location": ["body", "spec", "x"], "message": message}]
    assert runtime.task("ops/dup") is None


def test_a_document_within_the_values_is_read_and_validated(client: TestClient) -> None:
    many = BODY_VALUES - 100  # more than a file's document, as a large JobSpec may be
    body = HEAD + '"spec": {"schedule": "0 0 * * *", "x": [' + ",".join(["0"] * many) + "]}}"
    answer = client.post("/api/v1/tasks", content=body.encode(), headers=JSON)
    assert "spec.x" in str(assert_problem(answer, 422, "invalid-definition")["detail"])


def test_a_number_of_thousands_of_digits_is_422(client: TestClient) -> None:
    body = HEAD + '"spec": {"schedule": "0 0 * * *", "timeoutSeconds": ' + "9" * 4300 + "}}"
    problem = send(client, body)
    assert problem["detail"] == "body: a number is 4300 characters long, over the limit of 100"


def test_a_body_that_is_not_utf8_is_422(client: TestClient) -> None:
    answer = client.post("/api/v1/tasks", content=b'{"a": "\xff"}', headers=JSON)
    assert "not UTF-8" in assert_problem(answer, 422)["detail"]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(
    ("spec", "location", "message"),
    [
        (  # in a key the model does not know: the model's own error placed it, and failed (500)
            '"spec": {"schedule": "0 0 * * *", "job": {"spec": {"args\\ud800": ["x"]}}}}',
            ["body", "spec", "job", "spec"],
            "a key holds a lone UTF-16 surrogate escape, which is no Unicode text: 'args\\ud800'",
        ),
        (
            '"spec": {"schedule": "0 0 * * *", "command": {"args": ["echo", "a\\udc80"]}}}',
            ["body", "spec", "command", "args", 1],
            "holds a lone UTF-16 surrogate escape, which is no Unicode text",
        ),
    ],
    ids=["key", "value"],
)
def test_a_lone_surrogate_is_422_naming_its_place(
    client: TestClient,
    runtime: FakeRuntime,
    method: str,
    spec: str,
    location: list[object],
    message: str,
) -> None:
    problem = send(client, HEAD + spec, method)
    assert problem["errors"] == [{"location": location, "message": message}]
    assert runtime.task("ops/dup") is None


def test_a_lone_surrogate_in_a_label_key_is_not_stored_changed(
    client: TestClient, runtime: FakeRuntime
) -> None:
    """It was stored as three U+FFFD: a GET no longer gave back what was PUT."""
    body = (
        '{"apiVersion": "crontask.dev/v1alpha1", "kind": "CronTask", "metadata": '
        '{"name": "dup", "namespace": "ops", "labels": {"team\\udc80": "x"}}, '
        '"spec": {"schedule": "0 0 * * *", "command": {"args": ["true"]}}}'
    )
    problem = send(client, body, "PUT")
    assert problem["errors"][0]["location"] == ["body", "metadata", "labels"]  # type: ignore[index]
    assert runtime.task("ops/dup") is None
