"""Empty values at the edge, each refused in words that say what is wrong and what is allowed,
as crontask's other messages do: a null or missing ``apiVersion`` or ``kind`` names the one
value it takes (as a wrong one does); an empty name or namespace is said to be no DNS-1123
label, not in pydantic's words ("at least 1 character"); an empty ``valueFrom`` file or variable
of a header is refused when the task is read (it passed ``validate``, and every run failed)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.actions import ValueSource
from reconciler.core.crd import open_api_v3_schema
from reconciler.core.model import CronTask, json_schema
from reconciler.sources.messages import problems

TASK: dict[str, Any] = {
    "apiVersion": "crontask.dev/v1alpha1",
    "kind": "CronTask",
    "metadata": {"name": "a"},
    "spec": {"schedule": "@daily", "command": {"args": ["true"]}},
}
LABEL = (
    "a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter "
    "or digit)"
)
JOB = {
    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "b"}]}}
}


def doc(metadata: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    found = copy.deepcopy(TASK)
    found["metadata"].update(metadata or {})
    found["spec"].update(spec)
    return found


def worded(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as err:
        CronTask.model_validate(document)
    return [str(p) for p in problems(err.value, 20)[0]]


@pytest.mark.parametrize(
    ("field", "value"), [("apiVersion", "crontask.dev/v1alpha1"), ("kind", "CronTask")]
)
def test_a_null_or_missing_api_version_or_kind_names_the_value_it_takes(
    field: str, value: str
) -> None:
    assert worded({**doc(), field: None}) == [
        f"{field}: required field is empty (null): give it the value {value!r}"
    ]
    left_out = {k: v for k, v in doc().items() if k != field}
    assert worded(left_out) == [f"{field}: required field is missing: give it the value {value!r}"]
    # As a wrong value is told.
    assert worded({**doc(), field: "x"}) == [f"{field}: Input should be {value!r}"]


def test_other_required_fields_are_told_as_before() -> None:
    document = doc(schedule=None)
    del document["spec"]["command"]["args"]
    assert worded(document) == [
        "spec.schedule: required field is empty (null): give it a value",
        "spec.command.args: required field is missing",
    ]


def test_an_empty_name_or_namespace_is_no_label() -> None:
    assert worded(doc({"namespace": ""})) == [
        f"metadata.namespace: must not be empty: {LABEL}, or leave it out for 'default'"
    ]
    assert worded(doc({"name": ""})) == [f"metadata.name: must not be empty: {LABEL}"]
    job = doc(command=None, job={"namespace": "", "spec": JOB})
    assert worded(job) == [f"spec.job.namespace: must not be empty: {LABEL}, or leave it out"]
    # One that is not empty, as before; an empty label value is a value.
    assert worded(doc({"namespace": "Ops"})) == [f"metadata.namespace: 'Ops' is not {LABEL}"]
    assert CronTask.model_validate(doc({"labels": {"team": ""}})).metadata.labels == {"team": ""}


@pytest.mark.parametrize("value", ["", " ", "\t\n"])
@pytest.mark.parametrize(("field", "what"), [("file", "file"), ("env", "environment variable")])
def test_an_empty_value_source_of_a_header_is_refused(field: str, what: str, value: str) -> None:
    header = {"name": "Authorization", "valueFrom": {field: value}}
    http = {"url": "https://example.com/", "headers": [header]}
    assert worded(doc(command=None, http=http)) == [
        f"spec.http.headers[0].valueFrom.{field}: must not be empty (name the {what} the "
        "header's value is read from)"
    ]


def test_a_value_source_named_is_kept_as_written() -> None:
    assert ValueSource.model_validate({"file": " /run/secrets/token "}).file == (
        " /run/secrets/token "
    )
    assert ValueSource.model_validate({"env": "TOKEN"}).env == "TOKEN"


def test_the_schema_and_the_crd_say_so() -> None:
    schema = json_schema()["$defs"]["ValueSource"]["properties"]
    assert [schema[f]["anyOf"][0]["minLength"] for f in ("env", "file")] == [1, 1]
    crd = open_api_v3_schema()["properties"]["spec"]["properties"]["http"]["properties"]
    source = crd["headers"]["items"]["properties"]["valueFrom"]["properties"]
    assert [source[f]["minLength"] for f in ("env", "file")] == [1, 1]
