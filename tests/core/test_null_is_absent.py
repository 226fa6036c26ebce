"""An empty value (YAML's null: ``namespace:``, ``labels:`` with every entry commented out, a
Helm template rendered empty) of a field that may be left out is that field left out: its
default applies, as the API server prunes a null from a CronTask resource before defaulting. A
required field's null is refused, in words that do not suggest ``""`` (refused next). The JSON
schema says the same; the CRD does not need to (the API server prunes the null)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from reconciler.core.actions import (
    CommandAction,
    HttpAction,
    HttpHeader,
    JobAction,
    JobMetadata,
    ValueSource,
)
from reconciler.core.crd import open_api_v3_schema
from reconciler.core.model import CronTask, Metadata, RetryPolicy, TaskSpec, json_schema
from reconciler.sources.messages import problems

JOB = {
    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "b"}]}}
}
# Each model of a CronTask with the least it takes to be valid.
SMALLEST: dict[type[BaseModel], dict[str, Any]] = {
    Metadata: {"name": "a"},
    RetryPolicy: {},
    TaskSpec: {"schedule": "@daily", "command": {"args": ["true"]}},
    CommandAction: {"args": ["true"]},
    ValueSource: {"env": "A"},
    HttpHeader: {"name": "X-A", "value": "v"},
    HttpAction: {"url": "https://example.com/"},
    JobMetadata: {},
    JobAction: {"spec": JOB},
    CronTask: {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "a"},
        "spec": {"schedule": "@daily", "command": {"args": ["true"]}},
    },
}
OPTIONAL = [
    (model, field.alias or name)
    for model in SMALLEST
    for name, field in model.model_fields.items()
    if not field.is_required() and (field.alias or name) not in SMALLEST[model]
]


def doc(**spec: Any) -> dict[str, Any]:
    found = copy.deepcopy(SMALLEST[CronTask])
    found["spec"].update(spec)
    return found


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models ``annotation`` is or holds (``list[HttpHeader]``, ``JobAction | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in models_in(arg)]


def test_every_model_of_a_task_is_covered() -> None:
    # A model added to the task without an entry here would go untested.
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [CronTask]
    while todo:
        model = todo.pop()
        seen.add(model)
        for field in model.model_fields.values():
            todo += [m for m in models_in(field.annotation) if m not in seen]
    assert seen == set(SMALLEST)
    assert len(OPTIONAL) > 20


@pytest.mark.parametrize(("model", "key"), OPTIONAL, ids=lambda v: getattr(v, "__name__", v))
def test_a_null_optional_field_is_the_field_left_out(model: type[BaseModel], key: str) -> None:
    given = model.model_validate({**SMALLEST[model], key: None})
    assert given == model.model_validate(SMALLEST[model])
    assert given.model_fields_set == set(SMALLEST[model])  # not given: as if left out


def test_nulls_from_a_helm_template_are_the_defaults() -> None:
    text = doc(timeZone=None, suspend=None, retry=None, concurrencyPolicy=None)
    text["metadata"].update(namespace=None, labels=None, annotations=None)
    text["spec"]["command"]["env"] = None
    task = CronTask.model_validate(text)
    plain = CronTask.model_validate(doc())
    assert (task.key, task.spec.time_zone, task.metadata.labels) == ("default/a", "UTC", {})
    assert task.to_document() == plain.to_document()
    assert task.spec_hash() == plain.spec_hash()


def worded(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as err:
        CronTask.model_validate(document)
    return [str(p) for p in problems(err.value, 20)[0]]


def test_a_required_null_is_refused_without_suggesting_an_empty_string() -> None:
    document = doc(schedule=None, http={"url": None}, command=None)
    document["metadata"]["name"] = None
    assert worded(document) == [
        "metadata.name: required field is empty (null): give it a value",
        "spec.schedule: required field is empty (null): give it a value",
        "spec.http.url: required field is empty (null): give it a value",
    ]
    assert worded({**doc(), "spec": None}) == [
        "spec: required field is empty (null): give it a value"
    ]
    assert worded(doc(command={"args": None})) == [
        "spec.command.args: required field is empty (null): give it a value"
    ]


def test_a_null_entry_of_a_list_or_map_keeps_its_hint() -> None:
    # There "" is a value (an empty argument, an empty variable): the hint stands.
    hint = 'a string, not null (an empty value): give one, or "" for an empty string'
    assert worded(doc(command={"args": ["echo", None], "env": {"A": None}})) == [
        f"spec.command.args[1]: {hint}",
        f"spec.command.env.A: {hint}",
    ]


def test_the_json_schema_takes_what_the_model_takes() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    text = doc(timeZone=None, retry={"limit": None}, command={"args": ["x"], "env": None})
    text["metadata"]["namespace"] = None
    assert validator.is_valid(text)
    CronTask.model_validate(text)
    assert not validator.is_valid(doc(schedule=None))
    assert not validator.is_valid({**doc(), "metadata": None})


def test_the_crd_keeps_its_fields_plain() -> None:
    # A structural schema has no null: the API server prunes it before defaulting.
    spec = open_api_v3_schema()["properties"]["spec"]["properties"]
    assert spec["timeZone"] == {
        "type": "string",
        "description": "IANA time zone name, e.g. Europe/Berlin.",
        "default": "UTC",
        "maxLength": 64,
    }


def test_an_unknown_field_with_no_value_is_still_unknown() -> None:
    document = doc(schedul=None)
    document["metadata"]["nmae"] = None
    assert worded(document) == [
        "metadata.nmae: unknown field (did you mean 'name'?)",
        "spec.schedul: unknown field (did you mean 'schedule'?)",
    ]
